"""Calibrated P(fake) and named operating points: what turns a model's logits into a decision.

A model's calibration (fitted on a validation folder by `python -m training.calibrate`) is a temperature T
and a few named thresholds on the calibrated probability P(fake) = softmax(logits / T)[fake]:

    "eer"             where the false-positive rate equals the miss rate
    "fpr@1%"          the highest true-positive rate whose false-positive rate is at most 1% (any percentage)
    "best-accuracy"   the highest accuracy on the validation folder (depends on its real/fake balance)
    "argmax"          P(fake) >= 0.5, the class with the larger logit; needs no calibration
    "abstain"         two thresholds: "fake" above one, "real" below the other, "uncertain" between, each
                      side with a stated guarantee (fmca_rt.abstain; `training.calibrate --abstain`)

A face is called fake when P(fake) >= threshold. The calibration travels with the model: checkpoint
(`calibration` entry), ONNX metadata and engine sidecar (`ModelMetadata.calibration`). Needs only numpy.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .abstain import ABSTAIN, AbstainBand
from .errors import CalibrationError

ARGMAX = "argmax"
_FPR_NAME = re.compile(r"^fpr@(\d+(?:\.\d+)?)%$")


def fake_class_index(class_names) -> int:
    """The column of P(fake): the class named "fake", else the last class."""
    names = [str(n).lower() for n in class_names]
    return names.index("fake") if "fake" in names else len(names) - 1


def fpr_point_name(fpr: float) -> str:
    """The canonical name of a target false-positive rate given as a fraction: 0.01 -> "fpr@1%"."""
    return f"fpr@{round(fpr * 100, 6):g}%"


def target_fpr(name: str) -> float | None:
    """The false-positive rate a point is named for, as a fraction ("fpr@1%" -> 0.01); None for other names."""
    match = _FPR_NAME.match(name)
    return float(match.group(1)) / 100 if match else None


def canonical_point_name(name: str) -> str:
    """Spelling variants to the stored name: "FPR@1.0%" -> "fpr@1%", "best_accuracy" -> "best-accuracy"."""
    name = name.strip().lower().replace("_", "-")
    match = _FPR_NAME.match(name)
    return fpr_point_name(float(match.group(1)) / 100) if match else name


@dataclass(frozen=True)
class OperatingPoint:
    """A named decision threshold on calibrated P(fake), with what it achieved on the validation folder."""

    name: str
    threshold: float
    tpr: float | None = None  # true-positive rate (fakes caught) on the validation folder
    fpr: float | None = None  # false-positive rate (reals flagged) on the validation folder

    def label(self, fake_prob: float) -> str:
        return "fake" if fake_prob >= self.threshold else "real"

    def labels(self, fake_probs: np.ndarray) -> np.ndarray:
        """The label of each P(fake) in an array."""
        return np.where(np.asarray(fake_probs, dtype=np.float64) >= self.threshold, "fake", "real")

    def describe(self) -> str:
        text = f"{self.name} (P(fake) >= {self.threshold:.4g}"
        if self.tpr is not None and self.fpr is not None:
            text += f"; validation TPR {self.tpr:.1%} at FPR {self.fpr:.1%}"
        return text + ")"

    def summary_dict(self) -> dict:
        """How labels were decided, as results and summaries state it."""
        return {"name": self.name, "threshold": self.threshold}


ARGMAX_POINT = OperatingPoint(ARGMAX, 0.5)


@dataclass(frozen=True)
class Calibration:
    """Temperature, named operating points and the optional abstain band of one model; `source` records how
    they were obtained."""

    temperature: float = 1.0
    points: tuple[OperatingPoint, ...] = ()
    source: dict = field(default_factory=dict)
    abstain: AbstainBand | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise CalibrationError(f"A temperature must be a positive number, not {self.temperature!r}.")

    @property
    def point_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.points) + ((ABSTAIN,) if self.abstain else ())

    def operating_point(self, spec: str | float | None) -> OperatingPoint | AbstainBand:
        """`None` -> argmax; a number in [0, 1] -> that threshold; a name -> the stored point or the band."""
        if spec is None:
            return ARGMAX_POINT
        if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
            if not 0.0 <= spec <= 1.0:
                raise CalibrationError(f"A numeric threshold is a P(fake) between 0 and 1, not {spec!r}.")
            return OperatingPoint(f"P(fake)>={float(spec):g}", float(spec))
        if not isinstance(spec, str):
            raise CalibrationError(f"A threshold is a number or an operating-point name, not a {type(spec).__name__}.")
        name = canonical_point_name(spec)
        if name == ARGMAX:
            return ARGMAX_POINT
        if name == ABSTAIN:
            if self.abstain is None:
                raise CalibrationError("This model has no abstain band; calibrate it with `python -m "
                                       "training.calibrate ... --abstain fpr=1%,miss=5%`.")
            return self.abstain
        for point in self.points:
            if point.name == name:
                return point
        if not self.points:
            raise CalibrationError(f"This model has no calibrated operating points, so {spec!r} is unknown; "
                                   "calibrate it with `python -m training.calibrate`, or pass a number.")
        raise CalibrationError(f"Unknown operating point {spec!r}; this model has: "
                               f"{', '.join((ARGMAX,) + self.point_names)} (or pass a number).")

    def fake_probability(self, logits: np.ndarray, fake_index: int = -1) -> np.ndarray:
        """Calibrated P(fake) for logits B x C, computed in float64 so high-confidence scores stay distinct."""
        scaled = np.asarray(logits, dtype=np.float64) / self.temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        return exp[:, fake_index] / exp.sum(axis=1)

    def to_dict(self) -> dict:
        values = {"temperature": self.temperature, "points": [asdict(p) for p in self.points],
                  "source": dict(self.source)}
        if self.abstain is not None:  # absent rather than null: calibrations without a band stay as they were
            values["abstain"] = self.abstain.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict | None, source: str = "model") -> "Calibration":
        """The stored form back; `None` (a model never calibrated) gives T = 1 and no named points."""
        if values is None:
            return cls()
        try:
            points = tuple(OperatingPoint(str(p["name"]), float(p["threshold"]), _rate(p.get("tpr")), _rate(p.get("fpr")))
                           for p in values.get("points", ()))
            band = values.get("abstain")
            return cls(float(values["temperature"]), points, dict(values.get("source", {})),
                       None if band is None else AbstainBand.from_dict(band))
        except CalibrationError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CalibrationError(f"The calibration stored in {source} is unreadable.") from None


def _rate(value) -> float | None:
    return None if value is None else float(value)
