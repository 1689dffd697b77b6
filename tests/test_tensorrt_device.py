"""End to end on a machine with TensorRT and an NVIDIA GPU: build engines from a tiny model and compare them
with ONNX Runtime float32. Skipped elsewhere (never run on the development machines, which have neither)."""

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def gpu_with_tensorrt():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from fmca_rt.backends.tensorrt_env import current_gpu
    from fmca_rt.errors import FMCAError

    try:
        return current_gpu()
    except FMCAError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory):
    import torch

    from export.onnx import export_onnx
    from training.model import FMCANet

    torch.manual_seed(0)
    model = FMCANet.from_preset("tiny").eval()
    folder = tmp_path_factory.mktemp("onnx")
    return {plugins: export_onnx(model, folder / f"tiny{'.plugins' if plugins else ''}.onnx", plugins=plugins)
            for plugins in (False, True)}


@pytest.mark.parametrize("precision, plugins", [("fp32", False), ("fp16", False), ("fp16", True)])
def test_engine_matches_onnx_runtime(gpu_with_tensorrt, tiny_exports, tmp_path, precision, plugins):
    from export.build_engine import main
    from export.trt_validate import compare, onnx_runner, validation_inputs
    from fmca_rt.backends.tensorrt import TensorRTBackend

    if plugins:
        pytest.importorskip("tensorrt.plugin", reason="this TensorRT has no Python plugins")
        pytest.importorskip("triton", reason="compiling the kernels needs Triton")
    engine = tmp_path / "fmca.engine"
    argv = ["--onnx", str(tiny_exports[plugins]), "--batch", "1:2:4", "--output", str(engine)]
    argv += (["--fp16"] if precision == "fp16" else []) + (["--plugins"] if plugins else [])
    assert main(argv) == 0
    with TensorRTBackend(engine) as backend:
        metadata = backend.metadata
        reference = onnx_runner(tiny_exports[False], metadata)
        for pixels in validation_inputs(metadata, batch=5).values():  # 5 > MAX 4: split by the backend
            max_dp, _, _, _ = compare(reference(pixels), backend.infer(pixels), fake_index=1)
            assert max_dp < (1e-4 if precision == "fp32" else 1e-2)
        again = backend.infer(pixels)  # a repeated shape replays the captured graph where there is one
        np.testing.assert_allclose(again, backend.infer(pixels), rtol=0, atol=0)
