"""The abstain band: two thresholds on calibrated P(fake) that send the unclear faces to a person.

    P(fake) >= threshold         "fake"       false-positive rate at most fpr_target   } each with probability
    P(fake) <= real_threshold    "real"       miss rate at most miss_target            } at least `confidence`
    in between                   "uncertain"

`python -m training.calibrate ... --abstain fpr=1%,miss=5%` computes it on a validation folder
(training.conformal states the guarantee exactly and how it is obtained); it is stored with the model's
calibration and chosen with `Detector(model, threshold="abstain")`. Needs only NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import CalibrationError

ABSTAIN = "abstain"
UNCERTAIN = "uncertain"


def percent(fraction: float) -> str:
    """0.01 -> "1%", 0.005 -> "0.5%"."""
    return f"{round(fraction * 100, 6):g}%"


@dataclass(frozen=True)
class AbstainBand:
    """Thresholds of the band, the targets they were chosen for, and what they did on the calibration folder."""

    threshold: float        # P(fake) at or above it: "fake"
    real_threshold: float   # P(fake) at or below it: "real"; always below `threshold`
    fpr_target: float       # share of real faces called fake, as a fraction
    miss_target: float      # share of fake faces called real, as a fraction
    confidence: float       # probability, over the calibration draw, that both targets hold
    validation: dict = field(default_factory=dict)  # counts, shares and rates on the calibration folder

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and math.isfinite(self.real_threshold)
                and self.real_threshold < self.threshold):
            raise CalibrationError(f"An abstain band needs finite thresholds with real_threshold < threshold, not "
                                   f"{self.real_threshold!r} and {self.threshold!r}.")
        for name in ("fpr_target", "miss_target", "confidence"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise CalibrationError(f"An abstain band's {name} is a fraction in (0, 1), not {value!r}.")

    @property
    def name(self) -> str:
        return ABSTAIN

    def label(self, fake_prob: float) -> str:
        return str(self.labels(np.asarray([fake_prob]))[0])

    def labels(self, fake_probs: np.ndarray) -> np.ndarray:
        """The label of each P(fake) in an array: "fake", "real" or "uncertain"."""
        fake_probs = np.asarray(fake_probs, dtype=np.float64)
        return np.where(fake_probs >= self.threshold, "fake",
                        np.where(fake_probs <= self.real_threshold, "real", UNCERTAIN))

    def describe(self) -> str:
        return (f"{ABSTAIN} (P(fake) >= {self.threshold:.4g} fake, <= {self.real_threshold:.4g} real, uncertain "
                f"between; false-positive rate <= {percent(self.fpr_target)} and miss rate <= "
                f"{percent(self.miss_target)}, each with {percent(self.confidence)} confidence)")

    def summary_dict(self) -> dict:
        """How labels were decided, as results and summaries state it."""
        return {"name": ABSTAIN, "threshold": self.threshold, "real_threshold": self.real_threshold}

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "real_threshold": self.real_threshold, "fpr_target": self.fpr_target,
                "miss_target": self.miss_target, "confidence": self.confidence, "validation": dict(self.validation)}

    @classmethod
    def from_dict(cls, values: dict) -> "AbstainBand":
        return cls(float(values["threshold"]), float(values["real_threshold"]), float(values["fpr_target"]),
                   float(values["miss_target"]), float(values["confidence"]), dict(values.get("validation", {})))
