"""The CPU mode's ONNX Runtime form: ONNX Runtime on the model's INT8 form, checked against the float32 model
run by ONNX Runtime's default session, plus its cache, and the CPU mode's (`backend="cpu"`) errors."""

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.backends import create_backend
from fmca_rt.backends.base import BackendError
from fmca_rt.backends.cpu_fusion import fuse_for_cpu
from fmca_rt.backends.cpu_int8 import PRECISION, cached_int8_model, file_sha256, quantize_for_cpu
from fmca_rt.backends.cpu_mode import CpuBackend
from fmca_rt.backends.onnxruntime_cpu import OnnxRuntimeInt8Backend

from sdk_images import grace_hopper_bgr
from sdk_models import tiny_onnx

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def float_logits(path, pixels):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": pixels})[0]


def test_cpu_mode_runs_int8_and_stays_close_to_float32(tmp_path):
    pixels = np.random.default_rng(0).standard_normal((3, 3, 112, 112)).astype(np.float32)
    with OnnxRuntimeInt8Backend(tiny_onnx(), cache_dir=tmp_path) as backend:
        logits = backend.infer(pixels)
        quantized = onnx.load(str(backend.int8_path))
        assert backend.metadata.extra["precision"] == PRECISION
    op_types = {node.op_type for node in quantized.graph.node}
    assert "DynamicQuantizeLinear" in op_types or "DynamicQuantizeMatMul" in op_types
    assert "QAttention" in op_types
    difference = np.abs(logits - float_logits(tiny_onnx(), pixels)).max()
    assert 0.0 < difference < 0.05  # quantized (not the float graph), and close to it


def test_attention_and_gelu_fusions_leave_the_float_model_exact():
    pixels = np.random.default_rng(1).standard_normal((2, 3, 112, 112)).astype(np.float32)
    original = onnx.load(str(tiny_onnx()))
    softmaxes = sum(node.op_type == "Softmax" for node in original.graph.node)
    fused = fuse_for_cpu(original)
    op_types = [node.op_type for node in fused.graph.node]
    assert op_types.count("Attention") == 2 and "Erf" not in op_types and "Gelu" in op_types  # tiny: 2 ViT blocks
    assert op_types.count("Softmax") == softmaxes - 2  # the other attention modules are left alone
    session = ort.InferenceSession(fused.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"pixels": pixels})[0], float_logits(tiny_onnx(), pixels), atol=1e-5)


def test_the_int8_model_is_cached_and_reused_and_earlier_recipes_forms_are_removed(tmp_path):
    model_key = file_sha256(tiny_onnx())[:32]
    earlier, other_model = tmp_path / f"{model_key}.v1.int8.onnx", tmp_path / f"{'0' * 32}.v1.int8.onnx"
    profile = tmp_path / f"{model_key}.profile.json"
    for path in (earlier, other_model, profile):
        path.write_text("made by an earlier fmca-rt")
    first = cached_int8_model(tiny_onnx(), tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_int8_model(tiny_onnx(), tmp_path) == first and first.stat().st_mtime_ns == stamp
    # no temporary file left behind; this model's superseded form gone, another model's and the profile kept
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other_model.name, profile.name])


def test_an_already_quantized_file_runs_as_is(tmp_path):
    int8 = quantize_for_cpu(tiny_onnx(), tmp_path / "given.int8.onnx")
    with CpuBackend(int8, cache_dir=tmp_path / "cache") as backend:
        assert backend.chosen_path == int8 and "already quantized" in backend.describe()
    assert not (tmp_path / "cache").exists()


def test_detector_with_the_cpu_backend_scores_a_real_face(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert isinstance(create_backend(tiny_onnx(), "cpu"), CpuBackend)
    with Detector(tiny_onnx(), backend="cpu") as detector:
        result = detector.predict(grace_hopper_bgr())
        assert "cpu" in repr(detector)
    assert len(result.faces) == 1 and 0.0 <= result.fake_prob <= 1.0
    assert list((tmp_path / "fmca-rt" / "cpu").glob("*.int8.onnx")) and \
        list((tmp_path / "fmca-rt" / "cpu").glob("*.profile.json"))


def test_cpu_backend_refuses_a_gpu_and_non_onnx_models(tmp_path):
    with pytest.raises(BackendError, match="CPU only"):
        CpuBackend(tiny_onnx(), device="cuda")
    checkpoint = tmp_path / "model.pth"
    checkpoint.write_bytes(b"not used")
    with pytest.raises(BackendError, match="runs ONNX models"):
        CpuBackend(checkpoint).activate()


def test_a_file_that_is_not_onnx_gives_one_sentence(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    with pytest.raises(BackendError, match="broken.onnx is not a readable ONNX model"):
        CpuBackend(broken, cache_dir=tmp_path).activate()
