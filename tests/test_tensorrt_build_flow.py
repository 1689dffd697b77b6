"""`python -m export.build_engine` end to end with TensorRT's builder, runtime and a GPU stood in for: the ONNX each
generation parses, the accuracy gate (a drifting engine is refused and nothing is written), plugin support checked
before any slow step, the default timing cache, INT8 calibration caches per model.

The stand-in engine computes its logits with ONNX Runtime on the ONNX the builder parsed (plus a `drift` added
to P(fake)'s logit), so the gate compares two real computations."""

import logging
import shutil

import numpy as np
import onnx
import pytest

from export import build_engine as build_module
from export.build_engine import main
from export.trt_fp16 import precision_summary
from fmca_rt.backends import tensorrt as backend_module
from fmca_rt.backends.tensorrt_env import GpuInfo
from fmca_rt.backends.tensorrt_sidecar import file_sha256, read_sidecar
from fmca_rt.errors import DependencyError
from sdk_images import write_face_crops
from tensorrt_fake_builder import fake_build_api
from tensorrt_fakes import HostMemory, generations

GPU = GpuInfo("NVIDIA H100", (9, 0))


@pytest.fixture(params=generations())
def generation(request):
    return request.param


@pytest.fixture()
def stand_in(monkeypatch, tmp_path):
    """setup(generation, drift=0.0, **world options) -> (tensorrt module, BuildWorld), patched into the build and
    the backend; the default timing cache goes under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    memory = HostMemory()

    def setup(generation, drift=0.0, **world_options):
        import onnxruntime

        sessions = {}

        def engine(pixels):
            if world.built_from not in sessions:
                sessions[world.built_from] = onnxruntime.InferenceSession(world.built_from,
                                                                          providers=["CPUExecutionProvider"])
            logits = sessions[world.built_from].run(None, {"pixels": pixels})[0]
            return logits + np.array([0.0, drift], np.float32)

        trt, world = fake_build_api(generation, engine_compute=engine, memory=memory, **world_options)
        for module in (build_module, backend_module):
            monkeypatch.setattr(module, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(build_module, "current_gpu", lambda: GPU)
        monkeypatch.setattr(backend_module, "current_gpu", lambda index=0: GPU)
        monkeypatch.setattr(backend_module.DeviceMemory, "create", staticmethod(lambda kind="auto", index=0: memory))
        return trt, world

    return setup


@pytest.mark.trt_api
def test_each_generation_parses_its_graph_and_the_validated_engine_lands_with_its_sidecar(
        tiny_onnx_56px, tmp_path, stand_in, generation):
    trt, world = stand_in(generation)
    output = tmp_path / "out" / "fmca.engine"
    output.parent.mkdir()
    assert main(["--onnx", str(tiny_onnx_56px), "--fp16", "--batch", "1:2:4", "--output", str(output)]) == 0

    summary = precision_summary(world.models[-1])
    if generation == 10:  # float32 graph + FP16 flag
        assert summary["fp16"] == 0 and "FP16" in world.flags()
    else:  # strongly typed: the mixed-precision graph, no flags
        assert summary["fp16"] > summary["fp32"] and world.flags() == []
    assert output.read_bytes() == b"serialized plan"
    sidecar = read_sidecar(output)
    assert (sidecar.tensorrt_version, sidecar.compute_capability, sidecar.precision) == (trt.__version__, (9, 0),
                                                                                         "fp16")
    assert sidecar.batch_profile == (1, 2, 4) and sidecar.onnx_sha256 == file_sha256(tiny_onnx_56px)
    assert sidecar.strongly_typed == (generation == 11) and sidecar.plugins == ()
    assert sidecar.metadata.image_size == 56
    assert sidecar.extra["validation"]["max_delta_p_fake"] < 1e-2
    assert sorted(p.name for p in output.parent.iterdir()) == ["fmca.engine", "fmca.engine.json"]  # no leftovers


@pytest.mark.trt_api
def test_the_accuracy_gate_refuses_a_drifting_engine_and_keeps_the_old_one(tiny_onnx_56px, tmp_path, stand_in,
                                                                           generation, capsys):
    stand_in(generation, drift=0.5)
    output = tmp_path / "out" / "fmca.engine"
    output.parent.mkdir()
    output.write_bytes(b"the engine that worked")
    assert main(["--onnx", str(tiny_onnx_56px), "--batch", "1:2:4", "--output", str(output)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: The engine's P(fake) differs from ONNX Runtime float32 "
                                                   "by up to ") and "above --max-delta 0.01" in error[0]
    assert output.read_bytes() == b"the engine that worked" and sorted(p.name for p in output.parent.iterdir()) == [
        "fmca.engine"]


@pytest.mark.trt_api
def test_plugin_support_is_checked_before_any_export(tmp_path, stand_in, generation, monkeypatch, capsys):
    stand_in(generation)
    checkpoint = tmp_path / "best.pth"
    checkpoint.write_bytes(b"not read")

    def no_plugins():
        raise DependencyError("TensorRT 10.3.0 cannot serve the fmca:: Triton-kernel plugins.")

    def export(*args):
        raise AssertionError("exported the checkpoint before checking that TensorRT can serve the plugins")

    monkeypatch.setattr(build_module, "import_tensorrt_plugin", no_plugins)
    monkeypatch.setattr(build_module, "_export_checkpoint", export)
    assert main(["--checkpoint", str(checkpoint), "--plugins", "--output", str(tmp_path / "e.engine")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: TensorRT 10.3.0 cannot serve the fmca:: Triton-kernel plugins."]


@pytest.mark.trt_api
def test_the_default_timing_cache_is_per_version_and_gpu_and_named_in_the_log(tiny_onnx_56px, tmp_path, stand_in,
                                                                              generation, caplog):
    trt, world = stand_in(generation)
    expected = tmp_path / "cache" / "fmca-rt" / "tensorrt" / f"timing-{trt.__version__}-sm90.cache"
    argv = ["--onnx", str(tiny_onnx_56px), "--no-validate", "--batch", "1:2:4", "--output", str(tmp_path / "e.engine")]
    with caplog.at_level(logging.INFO, "fmca_rt.export"):
        assert main(argv) == 0 and main(argv) == 0
    assert f"Timing cache: {expected}" in caplog.text and f"Reusing the timing cache {expected}" in caplog.text
    assert expected.read_bytes() == b"+timings+timings"
    assert main([*argv, "--no-timing-cache"]) == 0
    assert [c for c in world.calls if c[0] == "timing cache"][2:] == []  # the third build used none


@pytest.mark.trt_api
def test_int8_calibration_caches_are_per_model(tiny_onnx_56px, tmp_path, stand_in, generation):
    if generation != 10:
        pytest.skip("TensorRT 11 has no calibrators (INT8 is a Q/DQ graph, test_tensorrt_int8.py)")
    _, world = stand_in(generation)
    calib = write_face_crops(tmp_path / "calib")
    other = tmp_path / "other.onnx"
    shutil.copy(tiny_onnx_56px, other)
    model = onnx.load(str(other))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "retrained": "yes"})
    onnx.save(model, str(other))
    output = tmp_path / "fmca.engine"

    def build(onnx_path):
        assert main(["--onnx", str(onnx_path), "--int8", "--calib", str(calib), "--batch", "1:2:4", "--no-validate",
                     "--output", str(output)]) == 0
        return world.calibration

    assert build(tiny_onnx_56px) == ("batches", 6)  # 12 crops in batches of OPT = 2
    assert build(tiny_onnx_56px)[0] == "cache"  # the same model and images: TensorRT's table is reused
    assert build(other) == ("batches", 6)  # another model never gets the first one's scales
    assert len(list(tmp_path.glob("fmca.engine.*.calib"))) == 2


@pytest.mark.trt_api
def test_plugin_flag_must_match_the_graph(tiny_onnx_56px, tmp_path, stand_in, generation, monkeypatch, capsys):
    stand_in(generation)
    monkeypatch.setattr(build_module, "import_tensorrt_plugin", lambda: None)
    output = tmp_path / "out" / "fmca.engine"
    output.parent.mkdir()
    assert main(["--onnx", str(tiny_onnx_56px), "--plugins", "--output", str(output)]) == 1
    assert "has no fmca plugin nodes; export it with `python -m export.onnx --plugins`" in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []


def test_a_fixed_batch_onnx_needs_a_fixed_profile(tmp_path, stand_in, capsys):
    from export.onnx import export_onnx
    from training.model import FMCANet

    fixed = tmp_path / "fixed.onnx"
    export_onnx(FMCANet.from_preset("tiny", image_size=56, pos_embed_grid=4).eval(), fixed, batch=2, verify=False)
    stand_in(generations()[0])
    assert main(["--onnx", str(fixed), "--batch", "1:4:8", "--output", str(tmp_path / "e.engine")]) == 1
    assert "fixed batch of 2, so --batch must be 2" in capsys.readouterr().err
