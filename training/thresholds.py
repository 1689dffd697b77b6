"""Operating thresholds from validation scores: EER, target false-positive rates, best accuracy.

Scores are P(fake) (or any score that grows with "fake"); labels are 1 for fake, 0 for real; a sample is
called fake when score >= threshold, as in scikit-learn's `roc_curve`. Every threshold is one of the
observed scores (or, when even the top score must not be flagged, the next float above it), so the rates
reported are exactly those the threshold achieves on the validation scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmca_rt.operating_points import OperatingPoint, fpr_point_name

DEFAULT_TARGET_FPRS = (0.01, 0.05)


@dataclass(frozen=True)
class RocCurve:
    """One point per distinct score, highest threshold first; point 0 flags nothing."""

    thresholds: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray
    num_real: int
    num_fake: int

    @property
    def accuracy(self) -> np.ndarray:
        correct = self.tpr * self.num_fake + (1.0 - self.fpr) * self.num_real
        return correct / (self.num_fake + self.num_real)

    def point(self, name: str, index: int) -> OperatingPoint:
        return OperatingPoint(name, float(self.thresholds[index]), float(self.tpr[index]), float(self.fpr[index]))


def roc_curve(labels: Sequence[int], scores: Sequence[float]) -> RocCurve:
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels for {scores.size} scores.")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("Labels must be 0 (real) or 1 (fake).")
    if not np.isfinite(scores).all():
        raise ValueError("Scores must be finite numbers.")
    num_fake = int(labels.sum())
    num_real = labels.size - num_fake
    if num_fake == 0 or num_real == 0:
        raise ValueError(f"Thresholds need both classes; got {num_real} real and {num_fake} fake samples.")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # The last index of each run of equal scores: lowering the threshold past a score flags all its ties.
    run_ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    run_ends = np.append(run_ends, scores.size - 1)
    true_pos = np.cumsum(sorted_labels)[run_ends]
    false_pos = (run_ends + 1) - true_pos
    top = math.nextafter(float(sorted_scores[0]), math.inf)
    return RocCurve(thresholds=np.concatenate([[top], sorted_scores[run_ends]]),
                    fpr=np.concatenate([[0.0], false_pos / num_real]),
                    tpr=np.concatenate([[0.0], true_pos / num_fake]),
                    num_real=num_real, num_fake=num_fake)


def point_at_fpr(curve: RocCurve, target: float) -> OperatingPoint:
    """The highest TPR whose FPR is at most `target` (ties: the higher threshold)."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"A target false-positive rate is a fraction in [0, 1), not {target!r}.")
    allowed = np.flatnonzero(curve.fpr <= target + 1e-12)  # fpr is non-decreasing, point 0 is always allowed
    best = allowed[np.argmax(curve.tpr[allowed])]
    return curve.point(fpr_point_name(target), int(best))


def equal_error_point(curve: RocCurve) -> OperatingPoint:
    """The point where FPR and the miss rate (1 - TPR) are closest; the EER is their mean there."""
    gap = np.abs(curve.fpr - (1.0 - curve.tpr))
    return curve.point("eer", int(np.argmin(gap)))


def best_accuracy_point(curve: RocCurve) -> OperatingPoint:
    return curve.point("best-accuracy", int(np.argmax(curve.accuracy)))


def operating_points(labels: Sequence[int], scores: Sequence[float],
                     target_fprs: Sequence[float] = DEFAULT_TARGET_FPRS) -> tuple[OperatingPoint, ...]:
    """EER, one point per target FPR, and best accuracy, in that order."""
    curve = roc_curve(labels, scores)
    return (equal_error_point(curve), *(point_at_fpr(curve, t) for t in target_fprs), best_accuracy_point(curve))


def format_points(points: Sequence[OperatingPoint], num_real: int | None = None, num_fake: int | None = None) -> str:
    """A plain-text table; with the counts it also says how coarse an FPR target is on this folder."""
    lines = [f"{'operating point':<16} {'threshold':>10} {'TPR':>8} {'FPR':>8}"]
    for p in points:
        lines.append(f"{p.name:<16} {p.threshold:>10.4g} {p.tpr:>8.2%} {p.fpr:>8.2%}")
    if num_real:
        lines.append(f"({num_real} real, {num_fake} fake images; one false positive is {1 / num_real:.2%} FPR)")
    return "\n".join(lines)
