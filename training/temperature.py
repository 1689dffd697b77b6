"""Temperature scaling (Guo et al., 2017) and the calibration error it is judged by. NumPy only.

One scalar T divides the logits; it is fitted by minimizing the negative log-likelihood of validation labels.
With b = 1/T the NLL is convex in b and its derivative mean(E_p[z] - z_label) grows with b, so the optimum
is found by bisecting the derivative's sign change: no step size, deterministic, to float precision.
Temperature never changes which class has the larger logit, only how confident P(fake) is.

The calibration error is measured on P(fake) itself, the number users threshold: equal-width bins over
[0, 1]; ECE = sum over bins of (share of samples) * |mean P(fake) - fraction of fakes|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPERATURE_RANGE = (0.01, 100.0)
DEFAULT_BINS = 15


def _scaled_log_softmax(logits: np.ndarray, inverse_temperature: float) -> np.ndarray:
    scaled = logits * inverse_temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def _check(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if logits.ndim != 2 or logits.shape[0] != labels.size or logits.shape[0] == 0:
        raise ValueError(f"Expected N x C logits and N labels, got shapes {logits.shape} and {labels.shape}.")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"Labels must be class indices in [0, {logits.shape[1]}).")
    if not np.isfinite(logits).all():
        raise ValueError("Logits must be finite numbers.")
    return logits, labels


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    logits, labels = _check(logits, labels)
    log_probs = _scaled_log_softmax(logits, 1.0 / temperature)
    return float(-log_probs[np.arange(labels.size), labels].mean())


def _nll_slope(logits: np.ndarray, labels: np.ndarray, inverse_temperature: float) -> float:
    probs = np.exp(_scaled_log_softmax(logits, inverse_temperature))
    return float(((probs * logits).sum(axis=1) - logits[np.arange(labels.size), labels]).mean())


def fit_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_RANGE) -> float:
    """The T in `bounds` that minimizes the NLL of labels under softmax(logits / T)."""
    logits, labels = _check(logits, labels)
    low_b, high_b = np.log(1.0 / bounds[1]), np.log(1.0 / bounds[0])  # bisect log(1/T)
    if _nll_slope(logits, labels, np.exp(low_b)) >= 0:
        return float(bounds[1])
    if _nll_slope(logits, labels, np.exp(high_b)) <= 0:  # separable data: NLL keeps falling as T -> 0
        return float(bounds[0])
    for _ in range(200):
        mid = 0.5 * (low_b + high_b)
        if _nll_slope(logits, labels, np.exp(mid)) < 0:
            low_b = mid
        else:
            high_b = mid
        if high_b - low_b < 1e-12:
            break
    return float(1.0 / np.exp(0.5 * (low_b + high_b)))


@dataclass(frozen=True)
class ReliabilityBins:
    """Per equal-width bin of P(fake): sample count, mean P(fake), fraction of fakes (NaN when empty)."""

    edges: np.ndarray
    counts: np.ndarray
    mean_probability: np.ndarray
    fake_fraction: np.ndarray

    @property
    def expected_calibration_error(self) -> float:
        used = self.counts > 0
        weights = self.counts[used] / self.counts.sum()
        return float((weights * np.abs(self.mean_probability[used] - self.fake_fraction[used])).sum())


def reliability_bins(fake_probability, is_fake, bins: int = DEFAULT_BINS) -> ReliabilityBins:
    probs = np.asarray(fake_probability, dtype=np.float64).ravel()
    truth = np.asarray(is_fake, dtype=np.float64).ravel()
    if probs.shape != truth.shape or probs.size == 0:
        raise ValueError(f"Expected as many outcomes as probabilities, got {truth.size} and {probs.size}.")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, probs, side="right") - 1, 0, bins - 1)  # P = 1 joins the last bin
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_probability = np.bincount(index, probs, minlength=bins) / counts
        fake_fraction = np.bincount(index, truth, minlength=bins) / counts
    return ReliabilityBins(edges, counts, mean_probability, fake_fraction)


def expected_calibration_error(fake_probability, is_fake, bins: int = DEFAULT_BINS) -> float:
    return reliability_bins(fake_probability, is_fake, bins).expected_calibration_error
