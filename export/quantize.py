"""Static INT8 quantization of an exported FMCA-Net for ONNX Runtime on CPUs (QDQ format).

Calibrated on face crops from a folder; the INT8 graph is then compared with the float32 graph on held-out
crops it was not calibrated on: max and mean |delta P(fake)|, and the ROC AUC of both when the held-out
crops are labelled (files under `real/` and `fake/` folders). Only the matrix products and convolutions
are quantized (weights per channel); normalization, softmax and GELU stay float32, which keeps the
transformer's accuracy on a CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from fmca_rt.errors import DataError, DependencyError, ExportError
from fmca_rt.metadata import ModelMetadata

from .face_samples import image_files, label_of, load_face_batch
from .ort_session import cpu_session

QUANTIZED_OP_TYPES = ["MatMul", "Gemm", "Conv"]
HOLDOUT_EVERY = 4  # without a held-out folder, every 4th calibration image is kept out of calibration
log = logging.getLogger("fmca_rt.export")


@dataclass(frozen=True)
class QuantizationReport:
    calibration_images: int
    holdout_images: int
    skipped_files: int
    max_abs_delta: float  # |P_int8(fake) - P_float32(fake)| over the held-out images
    mean_abs_delta: float
    auc_float32: float | None  # None when the held-out images are not labelled with both classes
    auc_int8: float | None

    def lines(self) -> list[str]:
        lines = [f"  INT8 calibrated on {self.calibration_images} crops, measured on {self.holdout_images} "
                 f"held-out crops ({self.skipped_files} unreadable files skipped)",
                 f"  |delta P(fake)| vs float32: max {self.max_abs_delta:.4f}, mean {self.mean_abs_delta:.4f}"]
        if self.auc_float32 is not None:
            lines.append(f"  AUC: float32 {self.auc_float32:.4f}, int8 {self.auc_int8:.4f}")
        return lines


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Probability that a random fake scores above a random real (ties count half); None without both."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if positives.size == 0 or negatives.size == 0:
        return None
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(greater + 0.5 * ties)


def _split_files(calib_dir, holdout_dir) -> tuple[list[Path], list[Path]]:
    calibration = image_files(calib_dir)
    if holdout_dir is not None:
        return calibration, image_files(holdout_dir)
    if len(calibration) < 2:
        raise DataError(f"{calib_dir} needs at least 2 images: some calibrate, the others measure the result.")
    holdout = calibration[HOLDOUT_EVERY - 1::HOLDOUT_EVERY] or calibration[-1:]
    held = set(holdout)
    return [p for p in calibration if p not in held], holdout


def _calibration_reader(input_name: str, pixels: np.ndarray, batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches: Iterator[np.ndarray] = (pixels[i:i + batch] for i in range(0, len(pixels), batch))

        def get_next(self):
            chunk = next(self._batches, None)
            return None if chunk is None else {input_name: chunk}

    return Reader()


def _fake_probability(session, pixels: np.ndarray, form) -> np.ndarray:
    (outputs,) = session.run(None, {session.get_inputs()[0].name: pixels})
    return form.fake_probability(outputs)


def int8_path_for(float_path: Path) -> Path:
    return float_path.with_name(float_path.stem + ".int8.onnx")


def quantize_int8(float_onnx: str | Path, calib_dir: str | Path, output: str | Path | None = None,
                  holdout_dir: str | Path | None = None, calibration_batch: int = 8) -> tuple[Path, QuantizationReport]:
    """Write the INT8 model (default: `<stem>.int8.onnx` beside the float32 one) and measure it."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise DependencyError("INT8 quantization needs onnxruntime: pip install 'fmca-rt[export]'.") from None
    from .onnx import attach_metadata, save_atomically  # export.onnx imports this module lazily

    float_onnx = Path(float_onnx)
    output = Path(output) if output is not None else int8_path_for(float_onnx)
    float_model = onnx.load(str(float_onnx))
    metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in float_model.metadata_props}, str(float_onnx))
    if metadata.extra.get("plugins"):
        raise ExportError(f"{float_onnx} has TensorRT plugin nodes; quantize the plain export instead.")
    calibration_files, holdout_files = _split_files(calib_dir, holdout_dir)
    calibration_pixels, _, skipped_calibration = load_face_batch(calibration_files, metadata)
    holdout_pixels, holdout_kept, skipped_holdout = load_face_batch(holdout_files, metadata)

    with tempfile.TemporaryDirectory(prefix="fmca-int8-") as scratch:
        prepared_path, quantized_path = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        try:  # ONNX Runtime's recommended first step: shape inference and graph optimization
            quant_pre_process(str(float_onnx), str(prepared_path))
            quantize_static(str(prepared_path), str(quantized_path),
                            _calibration_reader(metadata.input_name, calibration_pixels, calibration_batch),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OP_TYPES, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except (RuntimeError, ValueError) as error:
            raise ExportError(f"ONNX Runtime could not quantize {float_onnx}: {str(error).splitlines()[0]}") from None
        quantized = onnx.load(str(quantized_path))

    reference = _fake_probability(cpu_session(float_model), holdout_pixels, metadata.output_form)
    int8 = _fake_probability(cpu_session(quantized), holdout_pixels, metadata.output_form)
    delta = np.abs(int8 - reference)
    labels = [label_of(p) for p in holdout_kept]
    aucs = (None, None) if None in labels else (roc_auc(np.array(labels), reference), roc_auc(np.array(labels), int8))
    report = QuantizationReport(len(calibration_pixels), len(holdout_pixels), skipped_calibration + skipped_holdout,
                                float(delta.max()), float(delta.mean()), *aucs)
    for line in report.lines():
        log.info("%s", line)

    extra = {**metadata.extra, "precision": "int8", "calibration_images": report.calibration_images,
             "int8_max_abs_delta_p_fake": report.max_abs_delta}
    attach_metadata(quantized, dataclasses.replace(metadata, extra=extra))
    path = save_atomically(quantized, output, lambda written: onnx.checker.check_model(str(written)))
    log.info("Wrote %s (%.1f MB).", path, path.stat().st_size / 1e6)
    return path, report
