"""The engine sidecar: round trip, tamper and mismatch detection, and the clear errors where TensorRT is absent."""

import json

import pytest

from fmca_rt.backends.tensorrt_env import GpuInfo, current_gpu, import_tensorrt, version_triple
from fmca_rt.backends.tensorrt_sidecar import (EngineSidecar, check_compatible, read_sidecar, sidecar_path,
                                               write_engine)
from fmca_rt.errors import DependencyError, DeviceError, EngineError
from fmca_rt.metadata import ModelMetadata

ORIN = GpuInfo("Orin", (8, 7))
REBUILD = "python -m export.build_engine --onnx model.onnx --fp16 --batch 1:4:8 --output fmca.engine"


def make_sidecar(plan: bytes, **changes) -> EngineSidecar:
    import hashlib

    values = dict(metadata=ModelMetadata(config={"image_size": 224, "mean": [0.5] * 3, "std": [0.25] * 3,
                                                 "class_names": ["real", "fake"], "preprocessing": "pil-bilinear"},
                                         source_sha256="ab" * 32),
                  tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability=(8, 7), precision="fp16",
                  batch_profile=(1, 4, 8), onnx_sha256="cd" * 32, engine_sha256=hashlib.sha256(plan).hexdigest(),
                  build_command=REBUILD, plugins=("fmca::HaarDWT", "fmca::SFCMAttention"))
    values.update(changes)
    return EngineSidecar(**values)


def test_sidecar_round_trips_beside_the_plan(tmp_path):
    plan = b"not a real plan, but bytes whose hash the sidecar records"
    engine = tmp_path / "fmca.engine"
    written = write_engine(engine, plan, make_sidecar(plan))
    assert written == tmp_path / "fmca.engine.json" == sidecar_path(engine)
    assert engine.read_bytes() == plan  # the engine file stays a plain plan: nothing prepended
    loaded = read_sidecar(engine)
    assert loaded == make_sidecar(plan)
    assert loaded.metadata.image_size == 224 and loaded.metadata.class_names == ("real", "fake")
    stored = json.loads(written.read_text())
    assert stored["format"] == "fmca.engine" and stored["fmca_rt"]["config"]["image_size"] == 224
    assert not list(tmp_path.glob(".*.partial*"))


def test_a_replaced_plan_is_caught(tmp_path):
    engine = tmp_path / "fmca.engine"
    write_engine(engine, b"plan one", make_sidecar(b"plan one"))
    engine.write_bytes(b"plan two")
    with pytest.raises(EngineError, match="different engine.*rebuild both: python -m export.build_engine"):
        read_sidecar(engine)


@pytest.mark.parametrize("content, message", [(None, "has no sidecar"), ("{not json", "not an fmca-rt engine sidecar"),
                                              ('{"format": "other"}', "not an fmca-rt engine sidecar")])
def test_missing_or_foreign_sidecar(tmp_path, content, message):
    engine = tmp_path / "fmca.engine"
    engine.write_bytes(b"plan")
    if content is not None:
        sidecar_path(engine).write_text(content)
    with pytest.raises(EngineError, match=message):
        read_sidecar(engine)


def test_newer_schema_asks_for_an_upgrade(tmp_path):
    engine = tmp_path / "fmca.engine"
    write_engine(engine, b"plan", make_sidecar(b"plan"))
    values = json.loads(sidecar_path(engine).read_text())
    values["schema_version"] = 99
    sidecar_path(engine).write_text(json.dumps(values))
    with pytest.raises(EngineError, match="newer fmca-rt"):
        read_sidecar(engine)


def test_same_version_and_architecture_is_accepted():
    check_compatible(make_sidecar(b"p"), "10.3.0.26", GpuInfo("Jetson AGX Orin", (8, 7)))  # build number may differ


@pytest.mark.parametrize("version, gpu, expected", [
    ("10.7.0", ORIN, r"built for TensorRT 10\.3\.0\.30 \(this machine has 10\.7\.0\); rebuild"),
    ("10.3.0", GpuInfo("NVIDIA H100", (9, 0)), r"Orin \(compute capability 8\.7\) \(this machine has a NVIDIA H100 "
                                                r"\(compute capability 9\.0\)\)"),
    ("11.4.0", GpuInfo("NVIDIA H100", (9, 0)), r"TensorRT 10\.3\.0\.30 .* and for a Orin"),
])
def test_mismatch_names_the_difference_and_the_rebuild_command(version, gpu, expected):
    with pytest.raises(EngineError, match=expected) as raised:
        check_compatible(make_sidecar(b"p"), version, gpu, "fmca.engine")
    assert str(raised.value).endswith(REBUILD)


def test_version_triple():
    assert version_triple("10.3.0.26") == (10, 3, 0)
    assert version_triple("11.4") == (11, 4, 0)
    assert version_triple("10.13.3.9.post1") == (10, 13, 3)


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError):
        make_sidecar(b"p", precision="int4")


def test_missing_tensorrt_is_one_sentence_with_the_fix():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyError, match=r"'tensorrt' is not installed: pip install 'fmca-rt\[tensorrt\]'.*JetPack"):
            import_tensorrt()
    else:
        pytest.skip("TensorRT is installed here")


def test_no_gpu_is_a_device_error_not_a_traceback():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    try:
        import pycuda  # noqa: F401
        pytest.skip("pycuda is installed; this checks the torch route")
    except ImportError:
        pass
    with pytest.raises(DeviceError, match="No NVIDIA GPU is visible"):
        current_gpu()


def test_gpu_arch_number():
    assert ORIN.arch == 87 and GpuInfo("H100", (9, 0)).arch == 90
