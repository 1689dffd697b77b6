"""The openvino backend: OpenVINO's float32 against ONNX Runtime's on the same file (an independent engine as
the oracle), its bfloat16 hint, the IR it reads and writes, the Detector on it, and its one-sentence errors."""

import subprocess
import sys

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.backends import create_backend
from fmca_rt.errors import BackendError
from fmca_rt.metadata import MetadataError

from sdk_images import grace_hopper_bgr
from sdk_models import tiny_onnx

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'fmca-rt[openvino]'")
pytest.importorskip("nncf", reason="NNCF is not installed: pip install 'fmca-rt[openvino]'")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from fmca_rt.backends.openvino import OpenVinoBackend, cpu_has_bfloat16  # noqa: E402
from fmca_rt.backends.openvino_int8 import save_ir_atomically  # noqa: E402


def pixels(batch=3, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, 112, 112)).astype(np.float32)


def onnxruntime_logits(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0]


def test_float32_computes_what_onnx_runtime_computes():
    x = pixels()
    with OpenVinoBackend(tiny_onnx()) as backend:
        logits = backend.infer(x)
        assert backend.metadata.image_size == 112 and backend.metadata.class_names == ("real", "fake")
        assert "float32" in backend.describe()
    np.testing.assert_allclose(logits, onnxruntime_logits(tiny_onnx(), x), atol=1e-4)


def test_outputs_are_not_overwritten_by_the_next_run():
    with OpenVinoBackend(tiny_onnx()) as backend:
        first = backend.infer(pixels(seed=1))
        kept = first.copy()
        backend.infer(pixels(seed=2))
    np.testing.assert_array_equal(first, kept)


@pytest.mark.skipif(not cpu_has_bfloat16(ov.Core()), reason="this CPU has no bfloat16 arithmetic")
def test_bfloat16_hint_runs_reduced_and_stays_close():
    x = pixels()
    with OpenVinoBackend(tiny_onnx(), precision="bf16") as backend:
        logits = backend.infer(x)
        assert "bfloat16" in backend.describe()
    difference = np.abs(logits - onnxruntime_logits(tiny_onnx(), x)).max()
    assert 0.0 < difference < 0.1  # not the float32 graph, and close to it


def test_an_ir_saved_from_the_onnx_file_keeps_the_metadata_and_the_function(tmp_path):
    model = ov.Core().read_model(str(tiny_onnx()))
    path = save_ir_atomically(model, tmp_path / "tiny.xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin", "tiny.xml"]  # nothing temporary left
    x = pixels()
    with create_backend(path) as backend:  # .xml -> openvino
        assert backend.name == "openvino" and backend.metadata.image_size == 112
        np.testing.assert_allclose(backend.infer(x), onnxruntime_logits(tiny_onnx(), x), atol=1e-4)


def test_detector_with_the_openvino_backend_scores_a_real_face():
    with Detector(tiny_onnx(), backend="openvino") as detector:
        result = detector.predict(grace_hopper_bgr())
        assert "openvino" in repr(detector)
    with Detector(tiny_onnx(), backend="onnxruntime") as reference:
        expected = reference.predict(grace_hopper_bgr())
    assert len(result.faces) == 1
    assert result.fake_prob == pytest.approx(expected.fake_prob, abs=1e-5)


def test_errors_are_one_sentence(tmp_path):
    with pytest.raises(BackendError, match="CPU only"):
        OpenVinoBackend(tiny_onnx(), device="cuda")
    with pytest.raises(BackendError, match="precision must be one of f32, bf16"):
        OpenVinoBackend(tiny_onnx(), precision="int4")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    with pytest.raises(BackendError, match="OpenVINO cannot read .*broken.onnx"):
        OpenVinoBackend(broken).activate()
    bare = onnx.load(str(tiny_onnx()))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(MetadataError, match="no fmca-rt metadata"):
        OpenVinoBackend(tmp_path / "bare.onnx").activate()


def test_without_openvino_the_backend_names_the_install_command():
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from fmca_rt.backends.openvino import OpenVinoBackend\n"
            "from fmca_rt.errors import DependencyError\n"
            f"try:\n    OpenVinoBackend({str(tiny_onnx())!r}).activate()\n"
            "except DependencyError as error:\n    print(error)\n")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'fmca-rt[openvino]'" in printed


def test_the_cpu_mode_s_openvino_form_is_made_once_and_marked(tmp_path):
    from fmca_rt.backends.cpu_int8 import file_sha256
    from fmca_rt.backends.openvino_int8 import PRECISION, cached_openvino_int8, static_int8_operations

    calibration = [pixels(1, seed) for seed in range(4)]
    model_key = file_sha256(tiny_onnx())[:32]
    earlier_recipe = [tmp_path / f"{model_key}.ov1.int8{suffix}" for suffix in (".xml", ".bin")]
    other_model = tmp_path / f"{'0' * 32}.ov1.int8.xml"
    for path in (*earlier_recipe, other_model):
        path.write_text("made by an earlier fmca-rt")
    first = cached_openvino_int8(tiny_onnx(), tmp_path, lambda: calibration)
    stamp = first.stat().st_mtime_ns

    def no_calibration():
        raise AssertionError("calibration crops prepared although the form is cached")

    assert cached_openvino_int8(tiny_onnx(), tmp_path, no_calibration) == first and first.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.name, first.with_suffix(".bin").name, other_model.name])  # this model's earlier form removed
    model = ov.Core().read_model(str(first))
    assert model.get_rt_info(["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"]).astype(str) == "96"  # embed_dim
    static = static_int8_operations(ov.Core().read_model(str(tiny_onnx())))
    quantized_inputs = {target.get_node().get_friendly_name() for op in model.get_ordered_ops()
                        if op.get_type_name() == "FakeQuantize" for target in op.output(0).get_target_inputs()}
    assert quantized_inputs == set(static)  # static INT8 activations exactly there, nowhere else
    x = pixels()
    with OpenVinoBackend(first) as backend:
        assert backend.metadata.extra["precision"] == PRECISION and PRECISION in backend.describe()
        difference = np.abs(backend.infer(x) - onnxruntime_logits(tiny_onnx(), x)).max()
    assert 0.0 < difference < 0.05  # INT8 weights (not the float graph), and close to it


def test_the_static_int8_parts_are_found_by_the_checkpoint_s_names():
    from fmca_rt.backends.openvino_int8 import CPU_MODE_PARTS, PARTS

    model = ov.Core().read_model(str(tiny_onnx()))
    operations = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    parts = {name: select(model) for name, select in PARTS.items()}
    # tiny: 2 blocks x (qkv, proj, fc1, fc2); the token squeeze-excitation's 9 products; 5 frequency convolutions
    assert {name: len(names) for name, names in parts.items()} == {
        "vit-blocks": 8, "token-se": 9, "frequency-projection": 1, "frequency-convolutions": 4,
        "first-frequency-convolution": 1, "other-products": 12}
    everything = [name for names in parts.values() for name in names]
    assert len(everything) == len(set(everything))  # no operation in two parts
    convolutions = parts["frequency-convolutions"] + parts["first-frequency-convolution"]
    assert {operations[name].get_type_name() for name in convolutions} == {"Convolution"}
    first_input = operations[parts["first-frequency-convolution"][0]].input(0).get_source_output().get_node()
    assert first_input.get_type_name() == "Reshape"  # the wavelet coefficients, where the others read a GELU
    assert set(CPU_MODE_PARTS) == {"vit-blocks", "token-se", "frequency-projection", "frequency-convolutions"}


@pytest.mark.skipif(not cpu_has_bfloat16(ov.Core()), reason="this CPU has no bfloat16 arithmetic")
def test_the_cpu_mode_s_bfloat16_form_runs_the_same_ir_with_the_rest_in_bfloat16(tmp_path):
    from fmca_rt.backends.cpu_mode import CpuBackend

    x = pixels()
    with CpuBackend(tiny_onnx(), cache_dir=tmp_path, form="openvino-int8") as float_rest, \
            CpuBackend(tiny_onnx(), cache_dir=tmp_path, form="openvino-int8-bf16") as bfloat16_rest:
        assert float_rest.chosen_path == bfloat16_rest.chosen_path  # one INT8 IR, two precision hints
        assert "the rest float32" in float_rest.describe() and "the rest bfloat16" in bfloat16_rest.describe()
        difference = np.abs(float_rest.infer(x) - bfloat16_rest.infer(x)).max()
    assert 0.0 < difference < 0.1


def test_an_ir_that_cannot_be_written_is_one_sentence(tmp_path):
    model = ov.Core().read_model(str(tiny_onnx()))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BackendError, match="Cannot write .*model.xml"):
        save_ir_atomically(model, tmp_path / "a-file" / "model.xml")
    with pytest.raises(BackendError, match="saved as .xml"):
        save_ir_atomically(model, tmp_path / "model.onnx")
