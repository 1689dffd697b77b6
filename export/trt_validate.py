"""After a build: does the engine compute what the float32 ONNX computes? Same inputs through both.

The reference is ONNX Runtime on the CPU running the float32 ONNX the engine was built from (plugin nodes run
their PyTorch references through ONNX Runtime Extensions). Inputs are random images and real face crops (the
photos matplotlib and scikit-image ship), so both the numeric range and the real-data path are covered. The
report gives max and mean |delta P(fake)| and max |delta logit|; the build fails above a P(fake) tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from fmca_rt.errors import DependencyError
from fmca_rt.metadata import ModelMetadata


@dataclass(frozen=True)
class AccuracyReport:
    cases: dict  # case name -> (max |dP|, mean |dP|, max |dlogit|, images)
    tolerance: float

    @property
    def max_delta_p_fake(self) -> float:
        return max(case[0] for case in self.cases.values())

    @property
    def max_delta_logit(self) -> float:
        return max(case[2] for case in self.cases.values())

    @property
    def passed(self) -> bool:
        return self.max_delta_p_fake <= self.tolerance

    def lines(self) -> list[str]:
        lines = [f"{'inputs':<12} {'images':>6} {'max|dP(fake)|':>14} {'mean|dP(fake)|':>15} {'max|dlogit|':>12}"]
        lines += [f"{name:<12} {n:>6} {dp_max:>14.2e} {dp_mean:>15.2e} {dl_max:>12.2e}"
                  for name, (dp_max, dp_mean, dl_max, n) in self.cases.items()]
        lines.append(f"{'PASS' if self.passed else 'FAIL'}: max |dP(fake)| {self.max_delta_p_fake:.2e} "
                     f"(tolerance {self.tolerance:g})")
        return lines


def fake_probability(logits: np.ndarray, fake_index: int) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, fake_index] / shifted.sum(axis=1)


def compare(reference: np.ndarray, candidate: np.ndarray, fake_index: int) -> tuple[float, float, float, int]:
    delta_p = np.abs(fake_probability(reference, fake_index) - fake_probability(candidate, fake_index))
    return float(delta_p.max()), float(delta_p.mean()), float(np.abs(reference - candidate).max()), len(reference)


def validation_inputs(metadata: ModelMetadata, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    from fmca_rt.preprocess import preprocess

    from .face_samples import shipped_face_crops

    size = metadata.image_size
    noise = np.random.default_rng(seed).standard_normal((max(batch, 2), 3, size, size)).astype(np.float32)
    faces = preprocess(shipped_face_crops(), size, metadata.mean, metadata.std, metadata.preprocessing)
    return {"random": noise, "real faces": faces}


def validate(run_engine, run_reference, metadata: ModelMetadata, batch: int, tolerance: float) -> AccuracyReport:
    """`run_engine` and `run_reference` map float32 pixels (any batch) to logits."""
    form = metadata.output_form
    cases = {name: compare(form.softmax_logits(run_reference(pixels)), form.softmax_logits(run_engine(pixels)),
                           form.fake_index)
             for name, pixels in validation_inputs(metadata, batch).items()}
    return AccuracyReport(cases, tolerance)


def _cpu_session(onnx_path):
    model = onnx.load(str(onnx_path), load_external_data=False)
    if any(node.domain == "fmca" for node in model.graph.node):
        try:
            from .ort_session import cpu_session  # plugin nodes run their PyTorch references: needs torch
        except ImportError as error:
            raise DependencyError(f"Checking a plugin graph on the CPU needs {error.name}: pip install "
                                  "'fmca-rt[export]', or build with --no-validate.") from None
        return cpu_session(onnx_path)
    try:
        import onnxruntime as ort
    except ImportError:
        raise DependencyError("Validating the engine needs onnxruntime: pip install onnxruntime, or build with "
                              "--no-validate.") from None
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def onnx_runner(onnx_path, metadata: ModelMetadata, fixed_batch=None):
    """An ONNX file run by ONNX Runtime on the CPU, batch by batch when the ONNX has a fixed batch size."""
    session = _cpu_session(onnx_path)
    step = fixed_batch if isinstance(fixed_batch, int) and fixed_batch > 0 else None

    def run(pixels: np.ndarray) -> np.ndarray:
        if step is None:
            return session.run([metadata.output_name], {metadata.input_name: pixels})[0]
        outputs = []
        for start in range(0, len(pixels), step):
            chunk = pixels[start:start + step]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
            outputs.append(session.run([metadata.output_name], {metadata.input_name: padded})[0][:len(chunk)])
        return np.concatenate(outputs)

    return run
