"""INT8 (QDQ) quantization for ONNX Runtime, calibrated on face crops and measured on held-out ones."""

import dataclasses

import cv2
import numpy as np
import onnx
import pytest
import torch

from export import onnx as exporter
from export.face_samples import shipped_face_crops
from export.ort_session import cpu_session
from export.quantize import int8_path_for, quantize_int8, roc_auc
from fmca_rt.errors import DataError, ExportError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.preprocess import preprocess
from training.model import FMCANet


def _write_crops(root, count, seed):
    """Shifted, re-lit and (for `fake/`) blurred crops of the shipped faces, in the dataset layout."""
    rng = np.random.default_rng(seed)
    crops = shipped_face_crops()
    for i in range(count):
        crop = crops[i % len(crops)]
        margin = crop.shape[0] // 8
        dy, dx = rng.integers(0, margin, 2)
        crop = crop[dy:dy + crop.shape[0] - margin, dx:dx + crop.shape[1] - margin]
        crop = np.clip(crop * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        label = "fake" if i % 2 else "real"
        if label == "fake":
            crop = cv2.GaussianBlur(crop, (5, 5), 1.5)
        (root / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / label / f"{label}_{i}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory):
    torch.manual_seed(2)
    model = FMCANet.from_preset("tiny").eval()
    return exporter.export_onnx(model, tmp_path_factory.mktemp("int8") / "tiny.onnx")


def test_int8_model_is_qdq_close_to_float32_and_carries_metadata(float_onnx, tmp_path):
    calib = _write_crops(tmp_path / "calib", 16, seed=0)
    holdout = _write_crops(tmp_path / "holdout", 8, seed=1)
    path, report = quantize_int8(float_onnx, calib, holdout_dir=holdout)
    assert path == int8_path_for(float_onnx) and path.name == "tiny.int8.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    op_types = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types
    metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in model.metadata_props})
    assert metadata.extra["precision"] == "int8" and metadata.extra["calibration_images"] == 16
    assert (report.calibration_images, report.holdout_images, report.skipped_files) == (16, 8, 0)

    # the reported deltas, recomputed independently from the two files on the held-out crops
    files = sorted(holdout.rglob("*.png"))
    crops = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    pixels = preprocess(crops, 224)
    probabilities = [torch.softmax(torch.from_numpy(cpu_session(p).run(None, {"pixels": pixels})[0]), 1)[:, 1].numpy()
                     for p in (float_onnx, path)]
    delta = np.abs(probabilities[1] - probabilities[0])
    assert report.max_abs_delta == pytest.approx(delta.max(), abs=1e-6)
    assert report.mean_abs_delta == pytest.approx(delta.mean(), abs=1e-6)
    assert report.max_abs_delta < 0.05  # INT8 MatMul/Conv with per-channel weights stays close here
    labels = np.array([1 if f.parent.name == "fake" else 0 for f in files])
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    assert report.auc_float32 == pytest.approx(sklearn_metrics.roc_auc_score(labels, probabilities[0]))
    assert report.auc_int8 == pytest.approx(sklearn_metrics.roc_auc_score(labels, probabilities[1]))


def test_without_a_holdout_folder_every_fourth_crop_is_held_out(float_onnx, tmp_path):
    unlabelled = tmp_path / "crops"
    _write_crops(tmp_path / "tmp", 8, seed=3)
    unlabelled.mkdir()
    for i, f in enumerate(sorted((tmp_path / "tmp").rglob("*.png"))):
        f.rename(unlabelled / f"{i}.png")
    (unlabelled / "broken.png").write_bytes(b"not an image")
    _, report = quantize_int8(float_onnx, unlabelled, output=tmp_path / "q.onnx")
    assert report.calibration_images + report.holdout_images == 8 and report.holdout_images == 2
    assert report.skipped_files == 1 and report.auc_float32 is None


def test_roc_auc_matches_scikit_learn_with_ties():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.random(40), 1)  # many ties
    assert roc_auc(labels, scores) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
    assert roc_auc(np.zeros(3, dtype=int), scores[:3]) is None


def test_errors_are_one_sentence(float_onnx, tmp_path, capsys):
    with pytest.raises(DataError, match="holds no images"):
        quantize_int8(float_onnx, tmp_path)
    plugin_graph = onnx.load(str(float_onnx))
    props = {p.key: p.value for p in plugin_graph.metadata_props}
    metadata = ModelMetadata.from_onnx_props(props)
    onnx.helper.set_model_props(plugin_graph, dataclasses.replace(metadata, extra={"plugins": True}).to_onnx_props())
    onnx.save(plugin_graph, str(tmp_path / "plugins.onnx"))
    with pytest.raises(ExportError, match="plugin nodes"):
        quantize_int8(tmp_path / "plugins.onnx", tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        exporter.main(["--checkpoint", "x.pth", "--output", str(tmp_path / "y.onnx"), "--int8"])
    assert exit_info.value.code == 2 and "--int8 needs --calib" in capsys.readouterr().err
