"""Temperature scaling on synthetic miscalibrated logits, against PyTorch's cross entropy and a grid search."""

import numpy as np
import pytest
import torch

from training.temperature import (expected_calibration_error, fit_temperature, negative_log_likelihood,
                                  reliability_bins)


def miscalibrated_logits(overconfidence, size=20_000, seed=0):
    """Labels drawn from a calibrated margin s (P(fake) = sigmoid(s)); the model reports s * overconfidence."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0.0, 2.5, size)
    labels = (rng.random(size) < 1 / (1 + np.exp(-margin))).astype(int)
    logits = np.stack([np.zeros(size), margin * overconfidence], axis=1)
    return logits, labels


@pytest.mark.parametrize("overconfidence", [3.0, 0.5])
def test_fitted_temperature_undoes_the_miscalibration_and_lowers_nll(overconfidence):
    logits, labels = miscalibrated_logits(overconfidence)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(overconfidence, rel=0.1)
    before, after = negative_log_likelihood(logits, labels), negative_log_likelihood(logits, labels, temperature)
    assert after < before - 0.01
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2001))
    assert after <= min(negative_log_likelihood(logits, labels, t) for t in grid) + 1e-9
    probs_before = 1 / (1 + np.exp(-logits[:, 1]))
    probs_after = 1 / (1 + np.exp(-logits[:, 1] / temperature))
    ece_before, ece_after = (expected_calibration_error(p, labels) for p in (probs_before, probs_after))
    assert ece_after < 0.02 < ece_before


def test_nll_matches_torch_cross_entropy():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(0, 3, (64, 3)), rng.integers(0, 3, 64)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits) / 1.7, torch.from_numpy(labels))
    assert negative_log_likelihood(logits, labels, 1.7) == pytest.approx(expected.item(), rel=1e-12)


def test_calibrated_model_keeps_temperature_near_one():
    logits, labels = miscalibrated_logits(1.0, seed=2)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)


def test_separable_data_hits_the_lower_bound():
    logits = np.array([[0.0, 5.0], [0.0, -5.0]])
    assert fit_temperature(logits, [1, 0], bounds=(0.01, 100.0)) == 0.01


def test_reliability_bins_by_hand():
    probs = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    fake = np.array([0, 1, 0, 1, 1])
    bins = reliability_bins(probs, fake, bins=10)
    assert bins.counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins.mean_probability[1] == pytest.approx(0.135) and bins.fake_fraction[1] == 0.5
    expected = (1 * 0.05 + 2 * abs(0.135 - 0.5) + 2 * abs(0.975 - 1.0)) / 5
    assert bins.expected_calibration_error == pytest.approx(expected)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="N x C logits"):
        fit_temperature(np.zeros(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="class indices"):
        negative_log_likelihood(np.zeros((2, 2)), [0, 2])
