"""ONNX export: parity with PyTorch (tiny and the published depth-1 model), graph form, metadata, errors."""

import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch

from export import onnx as exporter
from export.onnx import export_onnx, sha256_of, verify_onnx
from export.ort_session import cpu_session
from fmca_rt.errors import ExportError
from fmca_rt.metadata import ModelMetadata
from training.config import FMCAConfig
from training.model import FMCANet
from conftest import REPO_ROOT


def randomized(model: FMCANet) -> FMCANet:
    """Non-trivial statistics, layer scales and gates (fresh ones are ~1e-5 or 0), so every branch moves the logits."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var") or name.endswith(".gamma"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or "gamma_" in name or name.endswith("alpha"):
                tensor.uniform_(-0.5, 0.5)
    return model.eval()


# ONNX ops the TensorRT 10 parser supports (onnx/onnx-tensorrt docs/operators.md), those an FMCA-Net graph may use
TENSORRT_PARSED_OPS = {"Add", "Concat", "Conv", "Div", "Erf", "Expand", "Gather", "Gemm", "LayerNormalization",
                       "MatMul", "Mul", "ReduceMean", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Sub",
                       "Transpose", "Unsqueeze", "Squeeze", "Pad", "Where", "Equal", "Cast", "Sqrt", "Pow", "Identity"}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = randomized(FMCANet.from_preset("tiny"))
    path = tmp_path_factory.mktemp("tiny") / "tiny.pth"
    model.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint):
    return export_onnx(tiny_checkpoint, tiny_checkpoint.with_suffix(".onnx"))


def test_tiny_export_matches_pytorch_at_batch_1_and_3(tiny_checkpoint, tiny_onnx):
    model = FMCANet.from_checkpoint(tiny_checkpoint)
    report = verify_onnx(tiny_onnx, model, batch_sizes=(1, 3))
    assert {(case.inputs, case.batch) for case in report.cases} == {
        ("random", 1), ("faces", 1), ("random", 3), ("faces", 3)}
    assert report.passed and report.max_abs_diff <= 1e-4


def test_graph_is_clean_with_dynamic_batch_and_layernorm_nodes(tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(model)
    (pixels,), (logits,) = model.graph.input, model.graph.output
    assert (pixels.name, logits.name) == ("pixels", "logits")
    assert [d.dim_param or d.dim_value for d in pixels.type.tensor_type.shape.dim] == ["batch", 3, 224, 224]
    assert [d.dim_param or d.dim_value for d in logits.type.tensor_type.shape.dim] == ["batch", 2]
    assert {o.domain: o.version for o in model.opset_import}[""] >= 18
    op_types = [node.op_type for node in model.graph.node]
    # tiny: 2 blocks x 2 + the backbone's final norm + FTMA's + SFCM's two
    assert op_types.count("LayerNormalization") == 8
    assert "ReduceMean" in op_types and "Resize" not in op_types  # the position embedding is a constant
    assert "Constant" not in op_types
    assert set(op_types) <= TENSORRT_PARSED_OPS, set(op_types) - TENSORRT_PARSED_OPS
    initializers = {init.name for init in model.graph.initializer}
    foldable = [n.name for n in model.graph.node if n.input and all(i in initializers for i in n.input)]
    assert foldable == []
    assert not any(node.metadata_props for node in model.graph.node)


def test_metadata_round_trips(tiny_checkpoint, tiny_onnx):
    props = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    metadata = ModelMetadata.from_onnx_props(props)
    assert FMCAConfig.from_dict(metadata.config) == FMCANet.from_checkpoint(tiny_checkpoint).config
    assert metadata.source_sha256 == sha256_of(tiny_checkpoint)
    assert (metadata.input_name, metadata.output_name) == ("pixels", "logits")
    assert metadata.image_size == 224 and metadata.class_names == ("real", "fake")
    assert metadata.extra["plugins"] is False and metadata.extra["batch"] == "dynamic"
    assert metadata.extra["opset"] == 18 and metadata.extra["precision"] == "float32"


def test_published_depth1_checkpoint_exports_and_matches(reference_dir, tmp_path):
    path = export_onnx(reference_dir / "fmca_depth1_checkpoint.pth", tmp_path / "depth1.onnx")
    model = FMCANet.from_checkpoint(reference_dir / "fmca_depth1_checkpoint.pth")
    report = verify_onnx(path, model, batch_sizes=(1, 3))
    assert report.max_abs_diff <= 1e-4, report.lines()
    # and against the published code's own outputs, an oracle independent of this project's model
    data = np.load(reference_dir / "fmca_depth1_io.npz")
    (logits,) = cpu_session(path).run(None, {"pixels": data["input"]})
    assert np.abs(logits - data["logits"]).max() <= 1e-4


def test_fixed_batch_export(tiny_checkpoint, tmp_path):
    path = export_onnx(tiny_checkpoint, tmp_path / "b2.onnx", batch=2)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 224, 224]


def test_a_failed_parity_check_leaves_the_previous_file_in_place(tiny_checkpoint, tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous good export")

    def wrong_reference_model(path, model, batch_sizes):  # parity against another model's weights
        other = FMCANet.from_preset("tiny").eval()
        return verify_onnx(path, other, batch_sizes)

    monkeypatch.setattr(exporter, "verify_onnx", wrong_reference_model)
    with pytest.raises(ExportError, match="does not compute the PyTorch model"):
        export_onnx(tiny_checkpoint, target)
    assert target.read_bytes() == b"previous good export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_an_interrupted_write_leaves_no_file(tiny_checkpoint, tmp_path, monkeypatch):
    def interrupted(model, path):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter.onnx, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tiny_checkpoint, tmp_path / "model.onnx", verify=False)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_the_check_keeps_the_previous_file_and_removes_the_temporary(tiny_checkpoint, tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous good export")
    process = subprocess.Popen([sys.executable, "-m", "export.onnx", "--checkpoint", str(tiny_checkpoint),
                                "--output", str(target)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".model.*.partial.onnx")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the export finished before a temporary file was seen"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and "Traceback" not in stderr
    assert target.read_bytes() == b"previous good export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp, ckpt: ["--checkpoint", str(tmp / "not_fmca.pth"), "--output", str(tmp / "m.onnx")],
     "is not an FMCA-Net checkpoint"),
    (lambda tmp, ckpt: ["--checkpoint", str(ckpt), "--output", str(tmp / "missing" / "m.onnx")],
     "does not exist"),
    (lambda tmp, ckpt: ["--checkpoint", str(ckpt), "--output", str(tmp)], "it is a folder"),
    (lambda tmp, ckpt: ["--checkpoint", str(ckpt), "--output", str(tmp / "m.onnx"), "--opset", "17"],
     "Opset 17 is too old"),
])
def test_user_errors_are_one_sentence_and_exit_non_zero(tiny_checkpoint, tmp_path, capsys, make_args, message):
    torch.save({"model_state_dict": {"backbone.weight": torch.zeros(3)}}, tmp_path / "not_fmca.pth")
    assert exporter.main(make_args(tmp_path, tiny_checkpoint)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_cli_entry_point_reports_a_bad_checkpoint_without_traceback(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    result = subprocess.run([sys.executable, "-m", "export.onnx", "--checkpoint", str(bad), "--output",
                             str(tmp_path / "m.onnx")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"error: {bad} is not a readable PyTorch checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_paper_b14_model_exports_and_matches(tmp_path):
    torch.manual_seed(0)
    model = randomized(FMCANet.from_preset("b14"))
    path = export_onnx(model, tmp_path / "b14.onnx")  # verifies at batch 1 and 3, raises above 1e-4
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert ModelMetadata.from_onnx_props(props).config["depth"] == 12
