"""Operating thresholds against scikit-learn's ROC and against the closed form for Gaussian scores."""

from statistics import NormalDist

import numpy as np
import pytest
from sklearn.metrics import roc_curve as sklearn_roc_curve

from training.thresholds import (best_accuracy_point, equal_error_point, operating_points, point_at_fpr,
                                 roc_curve)


def gaussian_scores(num_real, num_fake, separation, seed=0, decimals=None):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.0, 1.0, num_real), rng.normal(separation, 1.0, num_fake)])
    if decimals is not None:  # rounding creates ties, which must be flagged together
        scores = np.round(scores, decimals)
    labels = np.concatenate([np.zeros(num_real, int), np.ones(num_fake, int)])
    order = rng.permutation(scores.size)
    return labels[order], scores[order]


@pytest.mark.parametrize("decimals", [None, 1])
def test_curve_matches_sklearn(decimals):
    labels, scores = gaussian_scores(300, 200, 1.5, decimals=decimals)
    ours = roc_curve(labels, scores)
    fpr, tpr, thresholds = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_array_equal(ours.thresholds[1:], thresholds[1:])
    np.testing.assert_allclose(ours.fpr, fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.tpr, tpr, rtol=0, atol=1e-12)
    assert ours.thresholds[0] > scores.max() and not (scores >= ours.thresholds[0]).any()


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.2])
@pytest.mark.parametrize("decimals", [None, 1])
def test_target_fpr_point_is_sklearns_best_admissible_point(target, decimals):
    labels, scores = gaussian_scores(400, 250, 2.0, seed=1, decimals=decimals)
    fpr, tpr, thresholds = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    admissible = fpr <= target
    best = np.flatnonzero(admissible)[np.argmax(tpr[admissible])]
    point = point_at_fpr(roc_curve(labels, scores), target)
    flagged = scores >= point.threshold
    assert point.tpr == pytest.approx(tpr[best]) and point.fpr == pytest.approx(fpr[best])
    if best > 0:
        assert point.threshold == thresholds[best]
    # The rates are what the threshold really does to the scores.
    assert point.fpr == pytest.approx(flagged[labels == 0].mean()) and point.fpr <= target
    assert point.tpr == pytest.approx(flagged[labels == 1].mean())


def test_eer_and_best_accuracy_match_direct_computation_on_sklearns_curve():
    labels, scores = gaussian_scores(500, 300, 1.0, seed=2)
    fpr, tpr, thresholds = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    curve = roc_curve(labels, scores)
    eer_index = np.argmin(np.abs(fpr - (1 - tpr)))
    assert equal_error_point(curve).threshold == thresholds[eer_index]
    accuracy = [((scores >= t) == labels).mean() for t in thresholds[1:]]
    best = best_accuracy_point(curve)
    assert ((scores >= best.threshold) == labels).mean() == pytest.approx(max(accuracy))


def test_points_approach_the_closed_form_for_gaussian_scores():
    # real ~ N(0, 1), fake ~ N(2, 1): EER threshold 1 with EER Phi(-1); FPR 1% at Phi^-1(0.99).
    labels, scores = gaussian_scores(100_000, 100_000, 2.0, seed=3)
    eer, at_1, at_5, best = operating_points(labels, scores, target_fprs=(0.01, 0.05))
    normal = NormalDist()
    assert eer.threshold == pytest.approx(1.0, abs=0.03)
    assert (eer.fpr + 1 - eer.tpr) / 2 == pytest.approx(normal.cdf(-1.0), abs=0.005)
    for point, target in ((at_1, 0.01), (at_5, 0.05)):
        cut = normal.inv_cdf(1 - target)
        assert point.name == f"fpr@{target * 100:g}%"
        assert point.threshold == pytest.approx(cut, abs=0.03)
        assert point.tpr == pytest.approx(1 - normal.cdf(cut - 2.0), abs=0.01)
    assert best.name == "best-accuracy" and best.threshold == pytest.approx(1.0, abs=0.05)


def test_unusable_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="both classes"):
        roc_curve([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        roc_curve([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        roc_curve([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="target false-positive rate"):
        point_at_fpr(roc_curve([0, 1], [0.1, 0.2]), 5.0)
