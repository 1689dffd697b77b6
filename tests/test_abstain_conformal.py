"""The abstain band's thresholds (training.conformal): a direct computation, and the guarantee it states.

The guarantee: with probability at least `confidence` over the calibration draw (one face per video), the
false-positive rate of "P(fake) >= threshold" on new real faces is at most the fpr target, and the miss rate of
"P(fake) <= real_threshold" on new fake faces at most the miss target. It is checked over many calibration
draws from synthetic score distributions whose rates are known exactly, and on fresh test draws.
"""

from fractions import Fraction
from math import comb, nextafter

import numpy as np
import pytest
from scipy import stats

from fmca_rt.abstain import UNCERTAIN, AbstainBand
from fmca_rt.errors import CalibrationError
from fmca_rt.operating_points import Calibration, OperatingPoint
from training.conformal import (AbstainTargets, abstain_band, conformal_rank, parse_abstain_targets,
                                required_units)


def exact_rank(count: int, target: str, confidence: str) -> int | None:
    """The smallest k with P(Binomial(count, 1 - target) >= k) <= 1 - confidence, in exact fractions."""
    q, delta = 1 - Fraction(target), 1 - Fraction(confidence)
    tail = Fraction(0)
    tails = {}
    for k in range(count, 0, -1):
        tail += comb(count, k) * q ** k * (1 - q) ** (count - k)
        tails[k] = tail
    allowed = [k for k in range(1, count + 1) if tails[k] <= delta]
    return allowed[0] if allowed else None


@pytest.mark.parametrize("count,target,confidence", [(30, "0.1", "0.9"), (59, "0.05", "0.95"), (64, "0.05", "0.95"),
                                                     (120, "0.05", "0.9"), (150, "0.02", "0.8"), (58, "0.05", "0.95")])
def test_rank_is_the_exact_binomial_one_and_the_order_statistic_bound_holds(count, target, confidence):
    rank = conformal_rank(count, float(target), float(confidence))
    assert rank == exact_rank(count, target, confidence)
    assert (rank is None) == (count < required_units(float(target), float(confidence)))
    if rank is not None:  # the FPR of the k-th smallest of n uniforms' complement is Beta(n - k + 1, k)
        alpha, delta = float(target), 1 - float(confidence)
        assert stats.beta.sf(alpha, count - rank + 1, rank) <= delta + 1e-12
        if rank > 1:
            assert stats.beta.sf(alpha, count - rank + 2, rank - 1) > delta


def test_required_units_is_the_smallest_count_that_resolves_a_target():
    for target, confidence in [(0.01, 0.95), (0.05, 0.95), (0.05, 0.9), (0.1, 0.99), (0.2, 0.5)]:
        brute = next(n for n in range(1, 10_000) if conformal_rank(n, target, confidence) is not None)
        assert required_units(target, confidence) == brute
    assert required_units(0.01, 0.95) == 299 and required_units(0.05, 0.95) == 59


def test_thresholds_equal_a_direct_computation():
    rng = np.random.default_rng(3)
    real, fake = rng.beta(2, 5, 200), rng.beta(5, 2, 150)
    scores = np.concatenate([real, fake])
    is_fake = np.r_[np.zeros(200), np.ones(150)]
    band = abstain_band(is_fake, scores, AbstainTargets(0.02, 0.05, 0.9))
    k_real = exact_rank(200, "0.02", "0.9")
    k_fake = exact_rank(150, "0.05", "0.9")
    assert band.threshold == nextafter(np.sort(real)[k_real - 1], np.inf)  # fake: above the k-th lowest real
    assert band.real_threshold == nextafter(np.sort(fake)[::-1][k_fake - 1], -np.inf)  # real: below the k-th highest fake
    labels = np.array([band.label(s) for s in scores])
    assert band.validation["fpr"] == (labels[:200] == "fake").mean() == (real > np.sort(real)[k_real - 1]).mean()
    assert band.validation["miss_rate"] == (labels[200:] == "real").mean()
    assert band.validation["uncertain"] == (labels == UNCERTAIN).mean() > 0
    assert (band.validation["real_units"], band.validation["unit"]) == (200, "image")


def draw_band(rng, real_dist, fake_dist, n_real, n_fake, targets):
    scores = np.concatenate([real_dist.rvs(n_real, random_state=rng), fake_dist.rvs(n_fake, random_state=rng)])
    return abstain_band(np.r_[np.zeros(n_real), np.ones(n_fake)], scores, targets)


def test_rates_hold_at_the_stated_confidence_over_many_calibration_and_test_draws():
    rng = np.random.default_rng(0)
    real_dist, fake_dist = stats.beta(2, 5), stats.beta(5, 2)
    targets, n_real, n_fake, draws = AbstainTargets(fpr=0.01, miss=0.05, confidence=0.9), 300, 120, 1000
    fpr, miss, test_fpr, test_miss = [], [], [], []
    for _ in range(draws):
        band = draw_band(rng, real_dist, fake_dist, n_real, n_fake, targets)
        fpr.append(real_dist.sf(band.threshold))  # the rates on all new faces, exactly
        miss.append(fake_dist.cdf(band.real_threshold))
        test_real, test_fake = real_dist.rvs(3000, random_state=rng), fake_dist.rvs(3000, random_state=rng)
        test_fpr.append((test_real >= band.threshold).mean())  # and realised on a test draw
        test_miss.append((test_fake <= band.real_threshold).mean())
    for rates, target, count in ((fpr, 0.01, n_real), (miss, 0.05, n_fake)):
        exceeded = np.mean(np.array(rates) > target)
        # For continuous scores the bound is exact: P(rate > target) = P(Binomial(n, 1 - target) >= k) <= 10%.
        expected = stats.binom.sf(conformal_rank(count, target, 0.9) - 1, count, 1 - target)
        assert expected <= 0.1
        assert abs(exceeded - expected) < 4 * np.sqrt(expected * (1 - expected) / draws)
    # Realised on 3000 test faces (sampling noise of their own), the rates still exceed the targets on at most
    # 1 - confidence of the draws, up to the Monte Carlo error.
    slack = 0.1 + 3 * np.sqrt(0.09 / draws)
    assert np.mean(np.array(test_fpr) > 0.01) <= slack and np.mean(np.array(test_miss) > 0.05) <= slack
    assert np.mean(test_fpr) < 0.01 and np.mean(test_miss) < 0.05


def test_tied_scores_keep_the_guarantee():
    rng = np.random.default_rng(1)
    values = np.arange(11) / 10  # a score that takes 11 values: many ties at every threshold
    real_pmf, fake_pmf = stats.binom.pmf(range(11), 10, 0.25), stats.binom.pmf(range(11), 10, 0.7)
    targets, draws, exceeded = AbstainTargets(fpr=0.1, miss=0.1, confidence=0.9), 800, [0, 0]
    for _ in range(draws):
        scores = np.concatenate([rng.choice(values, 100, p=real_pmf), rng.choice(values, 100, p=fake_pmf)])
        band = abstain_band(np.r_[np.zeros(100), np.ones(100)], scores, targets)
        exceeded[0] += real_pmf[values >= band.threshold].sum() > 0.1
        exceeded[1] += fake_pmf[values <= band.real_threshold].sum() > 0.1
    assert max(exceeded) / draws <= 0.1 + 3 * np.sqrt(0.09 / draws)


def test_frames_of_one_video_count_once():
    """Correlated frames: one face per video keeps the guarantee; treating frames as independent breaks it."""
    rng = np.random.default_rng(2)
    videos_per_class, frames, spread = 80, 8, 0.3
    margin_sd = np.sqrt(1 + spread ** 2)  # a frame's logit: video effect N(+-1, 1) plus frame noise N(0, 0.3^2)
    videos = [f"{c}{v}" for c in "rf" for v in range(videos_per_class) for _ in range(frames)]
    is_fake = np.repeat([0, 1], videos_per_class * frames)
    targets, draws = AbstainTargets(fpr=0.05, miss=0.05, confidence=0.9), 400
    exceeded = {"per video": 0, "per frame": 0}
    for _ in range(draws):
        effect = np.repeat(np.r_[rng.normal(-1, 1, videos_per_class), rng.normal(1, 1, videos_per_class)], frames)
        scores = 1 / (1 + np.exp(-(effect + rng.normal(0, spread, effect.size))))
        for unit, ids in (("per video", videos), ("per frame", None)):
            band = abstain_band(is_fake, scores, targets, ids, seed=int(rng.integers(1 << 30)))
            assert band.threshold == band.validation["conformal_fake_threshold"]  # an open band
            logit = np.log(band.threshold / (1 - band.threshold))
            exceeded[unit] += stats.norm(-1, margin_sd).sf(logit) > 0.05
    assert exceeded["per video"] / draws <= 0.1 + 3 * np.sqrt(0.09 / draws)
    assert exceeded["per frame"] / draws > 0.2  # measured 29% (one face per video: 8%, exactly 8.6% expected)


def test_classes_far_apart_close_the_band_at_one_cut():
    rng = np.random.default_rng(4)
    is_fake = np.r_[np.zeros(100), np.ones(100)]
    band = abstain_band(is_fake, np.r_[rng.uniform(0, 0.2, 100), rng.uniform(0.8, 1, 100)], AbstainTargets(0.05, 0.05))
    assert band.threshold == 0.5 and band.real_threshold == nextafter(0.5, -1)
    assert band.validation["conformal_fake_threshold"] < 0.5 < band.validation["conformal_real_threshold"]
    assert band.validation["uncertain"] == 0
    shifted = abstain_band(is_fake, np.r_[rng.uniform(0.55, 0.6, 100), rng.uniform(0.9, 1, 100)],
                           AbstainTargets(0.05, 0.05))
    assert shifted.threshold == shifted.validation["conformal_fake_threshold"] > 0.5  # 0.5 is outside: nearer end


def test_unresolvable_targets_are_refused_with_the_counts_needed():
    scores, is_fake = np.linspace(0, 1, 128), np.r_[np.zeros(64), np.ones(64)]
    with pytest.raises(CalibrationError, match="fpr=1% needs at least 299 real images and there are 64; "
                                               "miss=2% needs at least 149 fake images and there are 64"):
        abstain_band(is_fake, scores, AbstainTargets(0.01, 0.02))
    videos = [f"v{i // 4}" for i in range(128)]
    with pytest.raises(CalibrationError, match="fpr=5% needs at least 59 real videos and there are 16"):
        abstain_band(is_fake, scores, AbstainTargets(0.05, 0.2), videos)


def test_target_text_and_the_band_in_a_calibration():
    assert parse_abstain_targets("fpr=1%, miss=5%") == AbstainTargets(0.01, 0.05, 0.95)
    assert parse_abstain_targets("miss=0.5%,FPR=2%,confidence=90%") == AbstainTargets(0.02, 0.005, 0.9)
    for bad in ("fpr=1,miss=5%", "fpr=1%", "fpr=0%,miss=5%", "fpr=1%,miss=5%,power=3%"):
        with pytest.raises(CalibrationError):
            parse_abstain_targets(bad)
    band = AbstainBand(0.8, 0.3, 0.01, 0.05, 0.95, {"fpr": 0.0})
    assert [band.label(p) for p in (0.8, 0.79, 0.3, 0.31, 0.0, 1.0)] == ["fake", UNCERTAIN, "real", UNCERTAIN,
                                                                         "real", "fake"]
    calibration = Calibration(1.5, (OperatingPoint("eer", 0.5, 0.9, 0.1),), {}, band)
    again = Calibration.from_dict(calibration.to_dict())
    assert again == calibration and again.operating_point("Abstain") is again.abstain
    assert "abstain" not in Calibration(1.5).to_dict()  # calibrations without a band are stored as before
    with pytest.raises(CalibrationError, match="--abstain fpr=1%,miss=5%"):
        Calibration(1.5).operating_point("abstain")
    with pytest.raises(CalibrationError, match="real_threshold < threshold"):
        AbstainBand(0.3, 0.3, 0.01, 0.05, 0.95)
    with pytest.raises(CalibrationError, match="unreadable"):
        Calibration.from_dict({"temperature": 1.0, "abstain": {"threshold": 0.8}})
