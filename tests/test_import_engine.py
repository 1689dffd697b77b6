"""Imported classifiers through `python -m export.build_engine` and the tensorrt backend, TensorRT and the GPU
stood in for (tests/tensorrt_fake_builder.py): the stand-in engine computes with ONNX Runtime on the ONNX the
builder parsed, under the file's own tensor names and output width; the accuracy gate reads the output form."""

import numpy as np
import pytest

pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")

from export import build_engine as build_module  # noqa: E402
from export.build_engine import main  # noqa: E402
from export.onnx import main as onnx_main  # noqa: E402
from fmca_rt import Detector  # noqa: E402
from fmca_rt.backends import tensorrt as backend_module  # noqa: E402
from fmca_rt.backends.tensorrt_env import GpuInfo  # noqa: E402
from fmca_rt.backends.tensorrt_sidecar import read_sidecar  # noqa: E402
from imported_models import fake_real_cnn  # noqa: E402
from sdk_images import astronaut_bgr, grace_hopper_bgr  # noqa: E402
from tensorrt_fake_builder import fake_build_api  # noqa: E402
from tensorrt_fakes import HostMemory, generations  # noqa: E402

FORMS = {"fake,real softmax": (2, ["--classes", "fake,real"]),
         "sigmoid meaning real": (1, ["--output-form", "sigmoid", "--sigmoid-means", "real"])}


@pytest.fixture(scope="module", params=list(FORMS))
def imported(request, tmp_path_factory):
    outputs, options = FORMS[request.param]
    folder = tmp_path_factory.mktemp("imported")
    _, users_file = fake_real_cnn(folder, outputs)
    path = folder / "imported.onnx"
    assert onnx_main(["--import", str(users_file), "--crop-scale", "1.4", "--output", str(path)] + options) == 0
    return path, outputs


def _stand_in(monkeypatch, tmp_path, generation, width, drift):
    """TensorRT whose engine is ONNX Runtime on the parsed file, its outputs moved by `drift` logits."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    memory, sessions = HostMemory(), {}

    def engine(pixels):
        if world.built_from not in sessions:
            sessions[world.built_from] = onnxruntime.InferenceSession(world.built_from,
                                                                      providers=["CPUExecutionProvider"])
        session = sessions[world.built_from]
        return session.run(None, {session.get_inputs()[0].name: pixels})[0] + np.float32(drift) * np.eye(width)[0]

    trt, world = fake_build_api(generation, engine_compute=engine, memory=memory,
                                engine_options={"names": ("input", "scores"), "classes": width})
    for module in (build_module, backend_module):
        monkeypatch.setattr(module, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(build_module, "current_gpu", lambda: GpuInfo("NVIDIA H100", (9, 0)))
    monkeypatch.setattr(backend_module, "current_gpu", lambda index=0: GpuInfo("NVIDIA H100", (9, 0)))
    monkeypatch.setattr(backend_module.DeviceMemory, "create", staticmethod(lambda kind="auto", index=0: memory))


@pytest.mark.parametrize("generation", generations())
def test_imported_engine_is_built_checked_and_classifies_like_onnx_runtime(imported, tmp_path, monkeypatch,
                                                                         generation):
    path, width = imported
    _stand_in(monkeypatch, tmp_path, generation, width, drift=0.0)
    engine = tmp_path / "imported.engine"
    assert main(["--onnx", str(path), "--fp16", "--batch", "1:2:4", "--output", str(engine)]) == 0
    sidecar = read_sidecar(engine)
    assert sidecar.metadata.output_width == width and sidecar.metadata.crop_scale == 1.4
    photos = [grace_hopper_bgr(), astronaut_bgr()]
    with Detector(engine, faces="haar") as on_engine, Detector(path, faces="haar") as on_onnx:
        got = [f.fake_prob for r in on_engine.predict_batch(photos) for f in r.faces]
        want = [f.fake_prob for r in on_onnx.predict_batch(photos) for f in r.faces]
    assert got and np.allclose(got, want, atol=2e-3)  # TensorRT 11 stand-ins run the FP16 graph they parsed


@pytest.mark.parametrize("generation", generations())
def test_the_gate_sees_a_drifting_imported_engine(imported, tmp_path, monkeypatch, generation, capsys):
    path, width = imported
    _stand_in(monkeypatch, tmp_path, generation, width, drift=0.5)
    engine = tmp_path / "imported.engine"
    assert main(["--onnx", str(path), "--batch", "1:2:4", "--output", str(engine)]) == 1
    assert "P(fake) differs from ONNX Runtime float32" in capsys.readouterr().err
    assert not engine.exists()


def test_triton_repository_declares_the_imported_outputs(imported, tmp_path):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] ships Triton's model-config protobuf")
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    from export.triton_repo import write_repository
    from fmca_rt.serve.protocol import check_served_model, metadata_from_config

    path, width = imported
    model_dir = write_repository(path, tmp_path / "repo", max_batch=8)
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert [(t.name, list(t.dims)) for t in config.input] == [("input", [3, 96, 96])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("scores", [width])]
    as_served = json_format.MessageToDict(config, preserving_proto_field_name=True)  # what a client fetches
    metadata = metadata_from_config(as_served, "the server")
    assert metadata.output_width == width and check_served_model(as_served, metadata, "the server") == 8
