"""Every reduced-precision form of a trained model against the float32 model, on held-out images.

The model is the session's trained test model (tests/demo_model.py), whose P(fake) spans [0, 1]. The oracle
is PyTorch float32 on pixels prepared here as the published training script prepared them (Pillow's
bilinear resize, ToTensor, ImageNet normalization), not by fmca_rt.preprocess. Each form runs through the
Detector as a user runs it, and must keep the ROC AUC within 0.01 of float32's, a Spearman rank correlation
of P(fake) of at least 0.99, and max |delta P(fake)| within the bound the README states for it. The same
check must reject an inverted model, a static INT8 model calibrated on all-zero images and the CPU mode fed
half-resolution crops: a check that passes those could not tell a faithful form from a broken one.
"""

import cv2
import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from demo_model import IMAGE_SIZE
from export.quantize import quantize_int8
from export.trt_precheck import reduced_precision_graph
from fmca_rt import Detector
from fmca_rt.backends.cpu_fusion import fuse_for_cpu
from fmca_rt.backends.cpu_mode import CpuBackend
from fmca_rt.metadata import ModelMetadata
from fmca_rt.preprocess import preprocess
from training.model import FMCANet

ort = pytest.importorskip("onnxruntime")

AUC_TOLERANCE = 0.01
MIN_RANK_CORRELATION = 0.99
# max |delta P(fake)| against float32 per form, as the README's table states them (measured there: 6e-8, 5.5e-7,
# 0.0010, 0.0064 in batches of 8 and 0.0099 in one call of 80, 0.084).
MAX_DELTA = {"torch": 1e-5, "onnxruntime": 1e-4, "fp16-graph": 0.01, "cpu": 0.02, "int8-static": 0.15}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def oracle_fake_probability(checkpoint, crops) -> np.ndarray:
    """P(fake) of the float32 model, with the published script's preprocessing written out here."""
    model = FMCANet.from_checkpoint(checkpoint).eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = torch.stack([
        (torch.from_numpy(np.array(Image.fromarray(crop).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)))
         .permute(2, 0, 1).float() / 255 - mean) / std for crop in crops])
    with torch.inference_mode():
        return torch.softmax(model(pixels), dim=1)[:, 1].numpy()


def detector_fake_probability(model, crops) -> np.ndarray:
    """P(fake) of each crop through the Detector, each crop taken as the face (`faces="none"`)."""
    with Detector(model, faces="none") as detector:
        results = detector.predict_batch([np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops])
    return np.array([result.fake_prob for result in results])


def disagreements(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, max_delta: float,
                  form: str = "") -> list[str]:
    """What a form gets wrong against float32: [] when it meets all three criteria. Prints what it measured
    (`pytest -s` shows the README's table)."""
    auc_reference, auc_candidate = roc_auc_score(labels, reference), roc_auc_score(labels, candidate)
    rank = spearmanr(reference, candidate).statistic
    delta = float(np.max(np.abs(candidate - reference)))
    print(f"{form}: AUC {auc_candidate:.4f} (float32 {auc_reference:.4f}), rank correlation {rank:.5f}, "
          f"max |delta P(fake)| {delta:.2g} (bound {max_delta:g})")
    problems = []
    if abs(auc_candidate - auc_reference) > AUC_TOLERANCE:
        problems.append(f"AUC {auc_candidate:.4f} against float32's {auc_reference:.4f}")
    if not rank >= MIN_RANK_CORRELATION:  # also catches a NaN correlation (a constant score)
        problems.append(f"rank correlation {rank:.4f}")
    if not delta <= max_delta:
        problems.append(f"max |delta P(fake)| {delta:.4f} above {max_delta}")
    return problems


@pytest.fixture(scope="module")
def reference(demo_model, held_out):
    return oracle_fake_probability(demo_model.checkpoint, held_out.crops)


@pytest.fixture(scope="module")
def static_int8(demo_model, demo_onnx, held_out, tmp_path_factory):
    """`python -m export.onnx --int8`'s quantization, calibrated on the model's training crops."""
    path, report = quantize_int8(demo_onnx, demo_model.data / "train",
                                 output=tmp_path_factory.mktemp("int8") / "demo.int8.onnx",
                                 holdout_dir=held_out.folder)
    return path, report


@pytest.fixture(scope="module")
def cpu_mode(demo_onnx, cpu_mode_cache):
    """A new CPU-mode backend of the model on each call, all sharing one cache (forms made and chosen once)."""
    return lambda: CpuBackend(demo_onnx, cache_dir=cpu_mode_cache)


@pytest.fixture(scope="module")
def fp16_graph(demo_onnx, tmp_path_factory):
    """The mixed-precision FP16 graph `python -m export.trt_precheck --fp16` runs (TensorRT 11's typed form)."""
    metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in onnx.load(str(demo_onnx)).metadata_props})
    return reduced_precision_graph(demo_onnx, "fp16", None, tmp_path_factory.mktemp("fp16"), metadata)


def test_the_trained_model_spans_zero_to_one_and_separates_held_out_fakes(reference, held_out):
    assert len(held_out.crops) == 80 and held_out.labels.sum() == 40
    print(f"float32 P(fake) on the held-out crops: {reference.min():.3f} to {reference.max():.3f}, "
          f"AUC {roc_auc_score(held_out.labels, reference):.4f}")
    assert np.percentile(reference, 5) < 0.2 and np.percentile(reference, 95) > 0.9, "P(fake) does not span [0, 1]"
    assert roc_auc_score(held_out.labels, reference) > 0.85


@pytest.mark.parametrize("form", ["torch", "onnxruntime", "cpu", "int8-static", "fp16-graph"])
def test_reduced_precision_form_ranks_and_scores_like_float32(form, demo_model, demo_onnx, static_int8, fp16_graph,
                                                              cpu_mode, reference, held_out):
    model = {"torch": demo_model.checkpoint, "onnxruntime": demo_onnx, "cpu": cpu_mode(),
             "int8-static": static_int8[0], "fp16-graph": fp16_graph}[form]
    candidate = detector_fake_probability(model, held_out.crops)
    assert disagreements(reference, candidate, held_out.labels, MAX_DELTA[form], form) == []


def test_the_cpu_mode_meets_its_bound_whatever_its_batch(cpu_mode, reference, held_out):
    """The CPU mode quantizes activations per call, so a face's P(fake) depends a little on its batch."""
    with Detector(cpu_mode(), faces="none") as detector:
        meta = detector.metadata
        pixels = preprocess(held_out.crops, meta.image_size, meta.mean, meta.std, meta.preprocessing)
        alone = np.concatenate([detector.classify_crops([crop]) for crop in held_out.crops])
        together = detector.calibration.fake_probability(detector.backend.infer(pixels), 1)
    assert disagreements(reference, alone, held_out.labels, MAX_DELTA["cpu"], "cpu, one crop per call") == []
    assert disagreements(reference, together, held_out.labels, MAX_DELTA["cpu"], "cpu, 80 crops in one call") == []


def test_the_cpu_modes_fusions_leave_the_trained_float_model_exact(demo_onnx, held_out):
    """The CPU mode fuses attention blocks and GELUs before quantizing; in float32 that must change nothing. The
    INT8 bound alone would hide a wrong fusion: a wrong attention scale moves this model's P(fake) by only 0.003."""
    pixels = preprocess(held_out.crops, IMAGE_SIZE)
    models = onnx.load(str(demo_onnx)), fuse_for_cpu(onnx.load(str(demo_onnx)))  # it fuses in place
    assert [node.op_type for node in models[1].graph.node].count("Attention") == 2  # tiny: 2 ViT blocks
    logits = [ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
              .run(None, {"pixels": pixels})[0] for model in models]
    np.testing.assert_allclose(logits[1], logits[0], rtol=0, atol=1e-5)


def test_static_int8_report_measures_the_held_out_crops(static_int8, reference, held_out):
    _, report = static_int8
    assert report.holdout_images == len(held_out.crops) and report.calibration_images == 256
    assert report.auc_float32 == pytest.approx(roc_auc_score(held_out.labels, reference), abs=1e-3)
    assert abs(report.auc_int8 - report.auc_float32) <= AUC_TOLERANCE
    assert report.max_abs_delta <= MAX_DELTA["int8-static"]


# ---- the same check on broken forms: each must be rejected ----------------------------------------------------
def test_an_inverted_model_fails_the_check(demo_model, reference, held_out, tmp_path):
    model = FMCANet.from_checkpoint(demo_model.checkpoint)
    with torch.no_grad():  # the classifier's two output rows swapped: P(fake) becomes P(real)
        model.fuse_head[4].weight.copy_(model.fuse_head[4].weight.flip(0))
        model.fuse_head[4].bias.copy_(model.fuse_head[4].bias.flip(0))
    model.save_checkpoint(tmp_path / "inverted.pth")
    problems = disagreements(reference, detector_fake_probability(tmp_path / "inverted.pth", held_out.crops),
                             held_out.labels, MAX_DELTA["torch"], "inverted model")
    assert len(problems) == 3 and problems[0].startswith("AUC")


def test_static_int8_calibrated_on_all_zero_images_fails_the_check(demo_onnx, reference, held_out, tmp_path):
    (tmp_path / "zeros").mkdir()
    for index in range(8):
        cv2.imwrite(str(tmp_path / "zeros" / f"black_{index}.png"), np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
    blind, _ = quantize_int8(demo_onnx, tmp_path / "zeros", output=tmp_path / "blind.int8.onnx",
                             holdout_dir=tmp_path / "zeros")
    problems = disagreements(reference, detector_fake_probability(blind, held_out.crops), held_out.labels,
                             MAX_DELTA["int8-static"], "int8-static calibrated on black images")
    assert any(p.startswith("rank correlation") for p in problems) and any(p.startswith("max") for p in problems)


def test_the_cpu_mode_on_half_resolution_crops_fails_the_check(cpu_mode, reference, held_out):
    half = IMAGE_SIZE // 2
    blurred = [cv2.resize(cv2.resize(crop, (half, half), interpolation=cv2.INTER_AREA), (IMAGE_SIZE, IMAGE_SIZE))
               for crop in held_out.crops]
    problems = disagreements(reference, detector_fake_probability(cpu_mode(), blurred),
                             held_out.labels, MAX_DELTA["cpu"], "cpu on half-resolution crops")
    assert any(p.startswith("rank correlation") for p in problems) and any(p.startswith("max") for p in problems)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_the_check_accepts_the_reference_itself_and_rejects_a_constant(reference, held_out):
    assert disagreements(reference, reference.copy(), held_out.labels, 0.0) == []
    constant = np.full_like(reference, 0.5)
    assert len(disagreements(reference, constant, held_out.labels, 0.5)) >= 2
