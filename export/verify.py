"""Parity of an exported ONNX file with the PyTorch model it came from, on random inputs and real faces.

The oracle is the PyTorch model with its reference ops; the file runs in ONNX Runtime on the CPU (plugin
graphs through the CPU implementations of their custom nodes, see export/ort_session.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from fmca_rt.errors import ExportError
from fmca_rt.preprocess import preprocess
from training import ops
from training.model import FMCANet

from .face_samples import shipped_face_crops
from .ort_session import cpu_session

FLOAT32_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ParityCase:
    inputs: str  # "random" or "faces"
    batch: int
    max_abs_diff: float


@dataclass(frozen=True)
class ParityReport:
    cases: tuple[ParityCase, ...]
    tolerance: float

    @property
    def max_abs_diff(self) -> float:
        return max(case.max_abs_diff for case in self.cases)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def lines(self) -> list[str]:
        rows = [f"  {c.inputs:<6} batch {c.batch}: max |logit diff| {c.max_abs_diff:.3e}" for c in self.cases]
        verdict = "OK" if self.passed else "FAILED"
        return rows + [f"  ONNX Runtime vs PyTorch: max |logit diff| {self.max_abs_diff:.3e} "
                       f"(tolerance {self.tolerance:g}) {verdict}"]


def parity_inputs(model: FMCANet, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of standard-normal pixels and a batch of preprocessed real face crops (repeated if needed)."""
    config = model.config
    return parity_pixels(config.image_size, config.mean, config.std, config.preprocessing, batch, seed)


def parity_pixels(size: int, mean, std, preprocessing: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`parity_inputs` for any classifier's input spec."""
    generator = torch.Generator().manual_seed(seed + batch)
    pixels = torch.randn(batch, 3, size, size, generator=generator).numpy()
    crops = shipped_face_crops()
    faces = preprocess([crops[i % len(crops)] for i in range(batch)], size, mean, std, preprocessing)
    return {"random": pixels, "faces": faces}


def verify_onnx(onnx_file: str | Path | onnx.ModelProto, model: FMCANet, batch_sizes: Sequence[int] = (1, 3),
                tolerance: float = FLOAT32_TOLERANCE) -> ParityReport:
    """Run the file in ONNX Runtime and the model in PyTorch on the same inputs; compare the logits.

    Returns the report; raises nothing on a mismatch (the caller decides), only when the file cannot run.
    """
    try:
        session = cpu_session(onnx_file)
    except RuntimeError as error:  # onnxruntime's load failures (Fail, InvalidGraph, ...) derive from it
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {str(error).splitlines()[0]}") from None
    input_name = session.get_inputs()[0].name
    model = model.eval()
    cases = []
    for batch in batch_sizes:
        for kind, pixels in parity_inputs(model, batch).items():
            with torch.no_grad(), ops.implementation("reference"):
                expected = model(torch.from_numpy(pixels)).numpy()
            (actual,) = session.run(None, {input_name: pixels})
            cases.append(ParityCase(kind, batch, float(np.abs(actual - expected).max())))
    return ParityReport(tuple(cases), tolerance)
