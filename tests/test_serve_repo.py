"""export.triton_repo: Triton model repositories from ONNX files and engines, parsed back with Triton's protobuf."""

import hashlib
import stat

import pytest

from sdk_models import IMAGE_SIZE, tiny_onnx

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] ships Triton's model-config protobuf")
onnx = pytest.importorskip("onnx")
from google.protobuf import text_format  # noqa: E402  (tritonclient[grpc] brings protobuf)
from tritonclient.grpc import model_config_pb2  # noqa: E402

from export import triton_repo  # noqa: E402
from fmca_rt.backends.tensorrt_sidecar import EngineSidecar, write_engine  # noqa: E402
from fmca_rt.errors import EngineError, FMCAError, ServeError  # noqa: E402
from fmca_rt.metadata import ModelMetadata  # noqa: E402


def parsed(model_dir) -> "model_config_pb2.ModelConfig":
    """The config as Triton reads it: text_format into tritonclient's ModelConfig (not our own parser)."""
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def onnx_metadata(path) -> ModelMetadata:
    ort = pytest.importorskip("onnxruntime")
    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    return ModelMetadata.from_onnx_props(props)


def fake_engine(folder, profile=(1, 4, 8), plan=b"not a real plan: the repository writer only copies it"):
    """A plan file and a real sidecar; the writer never parses the plan (Triton's TensorRT backend does)."""
    engine = folder / "fmca.engine"
    sidecar = EngineSidecar(metadata=onnx_metadata(tiny_onnx()), tensorrt_version="10.3.0", gpu_name="Orin",
                            compute_capability=(8, 7), precision="fp16", batch_profile=profile,
                            onnx_sha256="0" * 64, engine_sha256=hashlib.sha256(plan).hexdigest(),
                            build_command="python -m export.build_engine --onnx fmca.onnx --batch 1:4:8",
                            plugins=("fmca::HaarDWT",))
    write_engine(engine, plan, sidecar)
    return engine


def test_onnx_repository_config_from_metadata(tmp_path):
    model_dir = triton_repo.write_repository(tiny_onnx(), tmp_path / "repo")
    config = parsed(model_dir)
    meta = onnx_metadata(tiny_onnx())
    assert model_dir == tmp_path / "repo" / "fmca" and config.name == "fmca"
    assert config.backend == "onnxruntime" and config.default_model_filename == "model.onnx"
    assert config.max_batch_size == triton_repo.DEFAULT_ONNX_MAX_BATCH
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == \
        [(meta.input_name, model_config_pb2.TYPE_FP32, [3, IMAGE_SIZE, IMAGE_SIZE])]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == \
        [(meta.output_name, model_config_pb2.TYPE_FP32, [len(meta.class_names)])]
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 1000
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert [(g.count, g.kind) for g in config.instance_group] == [(1, model_config_pb2.ModelInstanceGroup.KIND_AUTO)]
    assert ModelMetadata.from_json(config.parameters["fmca_rt"].string_value) == meta
    copied = model_dir / "1" / "model.onnx"
    assert copied.read_bytes() == tiny_onnx().read_bytes()
    assert stat.S_IMODE(copied.stat().st_mode) & 0o044 == 0o044  # readable by a server running as another user


def test_options_reach_the_config_and_rewrite_replaces(tmp_path):
    triton_repo.write_repository(tiny_onnx(), tmp_path, name="deepfake")
    model_dir = triton_repo.write_repository(tiny_onnx(), tmp_path, name="deepfake", max_batch=4, instances=3,
                                             kind="cpu", queue_delay_us=250)
    config = parsed(model_dir)
    assert config.name == "deepfake" and config.max_batch_size == 4
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert [(g.count, g.kind) for g in config.instance_group] == [(3, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert sorted(p.name for p in model_dir.rglob("*")) == ["1", "config.pbtxt", "model.onnx"]  # no partial files


def test_engine_repository_uses_the_profile(tmp_path):
    engine = fake_engine(tmp_path)
    config = parsed(triton_repo.write_repository(engine, tmp_path / "repo"))
    assert config.backend == "tensorrt" and config.default_model_filename == "model.plan"
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert (tmp_path / "repo" / "fmca" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    smaller = parsed(triton_repo.write_repository(engine, tmp_path / "repo2", max_batch=6))
    assert smaller.max_batch_size == 6 and list(smaller.dynamic_batching.preferred_batch_size) == [4]


@pytest.mark.parametrize("options, words", [
    ({"max_batch": 9}, "between 1 and 8"),
    ({"kind": "cpu"}, "runs on a GPU"),
    ({"instances": 0}, "at least 1"),
    ({"queue_delay_us": -1}, "cannot be negative"),
])
def test_engine_option_errors(tmp_path, options, words):
    with pytest.raises(ServeError, match=words):
        triton_repo.write_repository(fake_engine(tmp_path), tmp_path / "repo", **options)
    assert not (tmp_path / "repo").exists()  # nothing written when the config cannot be made


def test_engine_that_cannot_take_batch_one_is_refused(tmp_path):
    with pytest.raises(ServeError, match=r"rebuild it with --batch 1:4:8"):
        triton_repo.read_artifact(fake_engine(tmp_path, profile=(2, 4, 8)))


def test_engine_whose_sidecar_describes_another_plan(tmp_path):
    engine = fake_engine(tmp_path)
    engine.write_bytes(b"a different plan")
    with pytest.raises(EngineError, match="hash mismatch"):
        triton_repo.read_artifact(engine)


def test_fixed_batch_onnx_is_refused(tmp_path):
    model = onnx.load(str(tiny_onnx()))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    with pytest.raises(ServeError, match="fixed batch of 2.*--batch dynamic"):
        triton_repo.read_artifact(tmp_path / "fixed.onnx")


@pytest.mark.parametrize("name, content, words", [
    ("model.pth", b"x", "not model.pth"),
    ("corrupt.onnx", b"\x00\xffnot protobuf" * 10, "not a readable ONNX model"),
])
def test_unusable_model_files(tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FMCAError, match=words):
        triton_repo.read_artifact(tmp_path / name)


def test_onnx_without_metadata(tmp_path):
    model = onnx.load(str(tiny_onnx()))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(FMCAError, match="export.onnx"):
        triton_repo.read_artifact(tmp_path / "bare.onnx")


def test_validation_catches_edited_repositories(tmp_path):
    model_dir = triton_repo.write_repository(tiny_onnx(), tmp_path)
    config_path = model_dir / "config.pbtxt"
    good = config_path.read_text()
    config_path.write_text(good.replace("max_batch_size", "max_batchsize"))
    with pytest.raises(ServeError, match="not a valid Triton model config"):
        triton_repo.validate_model_dir(model_dir)
    config_path.write_text(good.replace('name: "fmca"', 'name: "other"'))
    with pytest.raises(ServeError, match="is not its folder's"):
        triton_repo.validate_model_dir(model_dir)
    config_path.write_text(good)
    (model_dir / "1" / "model.onnx").unlink()
    with pytest.raises(ServeError, match="1/model.onnx is missing"):
        triton_repo.validate_model_dir(model_dir)


def test_command_line(tmp_path, capsys):
    assert triton_repo.main(["--model", str(tiny_onnx()), "--out", str(tmp_path), "--max-batch", "2"]) == 0
    assert "tritonserver --model-repository" in capsys.readouterr().out
    assert parsed(tmp_path / "fmca").max_batch_size == 2
    assert triton_repo.main(["--model", str(tmp_path / "missing.onnx"), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("triton_repo: error: Model file") and error.endswith("does not exist.")
    assert "Traceback" not in error and len(error.splitlines()) == 1


def test_rendered_config_round_trips():
    artifact = triton_repo.read_artifact(tiny_onnx())
    config = triton_repo.build_config(artifact, max_batch=3)
    again = triton_repo.parse_config(triton_repo.render_config(config))
    assert again == config and again.max_batch_size == 3


def test_onnx_with_external_weights_is_refused(tmp_path):
    model = onnx.load(str(tiny_onnx()))
    onnx.save(model, str(tmp_path / "split.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="split.onnx.data", size_threshold=0)
    with pytest.raises(ServeError, match="external files"):
        triton_repo.read_artifact(tmp_path / "split.onnx")
