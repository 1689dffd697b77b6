"""Split-conformal abstain thresholds whose error rates hold with a stated confidence.

`abstain_band(...)` turns calibrated validation scores into an `fmca_rt.abstain.AbstainBand`:
P(fake) >= t_fake is "fake", P(fake) <= t_real is "real", between is "uncertain".

The guarantee, for t_fake (t_real is the same argument on the fake faces, with the scores negated):
    Draw the calibration folder's real videos independently from the real videos the detector will screen,
    and take one face of each at random. Then, with probability at least `confidence` over that draw, a
    face of a new real video (a random face of it) gets P(fake) >= t_fake with probability at most `fpr`.
It is a statement about the thresholds actually stored (a "training-conditional" or PAC guarantee, Vovk
2012), not an average over calibration draws, so it is what a team lives with after calibrating once.

Why it holds: with n real scores, t_fake is the next float above their k-th smallest, s_(k), so a face is
called fake exactly when its score exceeds s_(k). Writing the scores as Q(U_i) (Q the quantile function, U_i
uniform), the false-positive rate P(S > s_(k)) is at most 1 - U_(k), with equality when no scores tie, so
P(rate > fpr) <= P(U_(k) < 1 - fpr) = P(Binomial(n, 1 - fpr) >= k). k is the smallest rank that makes this
at most 1 - confidence; none exists unless (1 - fpr)^n <= 1 - confidence, i.e. n >= log(1 - confidence) /
log(1 - fpr): 299 real videos for fpr 1% at 95% confidence, 59 for 5%.

Frames of one video are not independent draws, so the calibration unit is the video: one face per video,
chosen with a seeded generator (a folder of single images is a folder of one-frame videos). Temperature
scaling is monotone in the logit margin, so fitting T on the same folder changes no face's side of a
threshold and the guarantee holds whatever T is. Nothing holds for faces unlike the calibration folder
(other manipulation methods, re-encoding: `python -m training.evaluate --perturb`), and a video's or
track's label, taken from its mean score, has no guarantee of its own.

In the rare case t_real >= t_fake (scores that separate the classes widely), every score is covered by one
of the two guarantees, so the band is closed at a single cut between them: 0.5 if it lies between, else the
nearer end. Labels are then "fake" at or above the cut and "real" below it, and both guarantees still hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmca_rt.abstain import AbstainBand, percent
from fmca_rt.errors import CalibrationError

DEFAULT_CONFIDENCE = 0.95
_SPEC_ITEM = re.compile(r"^(fpr|miss|confidence)=(\d+(?:\.\d+)?)%$")


@dataclass(frozen=True)
class AbstainTargets:
    fpr: float
    miss: float
    confidence: float = DEFAULT_CONFIDENCE


def parse_abstain_targets(text: str) -> AbstainTargets:
    """"fpr=1%,miss=5%[,confidence=95%]" -> AbstainTargets; a mistake raises CalibrationError."""
    values = {}
    for item in text.replace(" ", "").lower().split(","):
        match = _SPEC_ITEM.match(item)
        if match is None:
            raise CalibrationError(f"Cannot read {item!r} in --abstain {text!r}; write percentages such as "
                                   "fpr=1%,miss=5% (optionally ,confidence=95%).")
        values[match.group(1)] = float(match.group(2)) / 100
    if "fpr" not in values or "miss" not in values:
        raise CalibrationError(f"--abstain {text!r} needs both fpr= and miss=, e.g. fpr=1%,miss=5%.")
    for name, value in values.items():
        if not 0.0 < value < 1.0:
            raise CalibrationError(f"--abstain {name}= must be above 0% and below 100%, not {percent(value)}.")
    return AbstainTargets(values["fpr"], values["miss"], values.get("confidence", DEFAULT_CONFIDENCE))


def required_units(target: float, confidence: float) -> int:
    """The fewest independent calibration units for which an error-rate target is reachable at `confidence`."""
    count = max(1, math.ceil(math.log(1.0 - confidence) / math.log(1.0 - target)))
    while count > 1 and (1.0 - target) ** (count - 1) <= 1.0 - confidence:  # guard the log's rounding
        count -= 1
    while (1.0 - target) ** count > 1.0 - confidence:
        count += 1
    return count


def conformal_rank(count: int, target: float, confidence: float) -> int | None:
    """The smallest k in 1..count with P(Binomial(count, 1 - target) >= k) <= 1 - confidence; None if none."""
    from scipy.stats import binom

    ranks = np.arange(1, count + 1)
    tail = binom.sf(ranks - 1, count, 1.0 - target)  # P(X >= k), falling with k
    allowed = np.flatnonzero(tail <= 1.0 - confidence)
    return int(ranks[allowed[0]]) if allowed.size else None


def upper_threshold(scores: np.ndarray, target: float, confidence: float) -> float:
    """The threshold t for "score >= t" whose rate on new draws is at most `target` with `confidence`."""
    rank = conformal_rank(scores.size, target, confidence)
    if rank is None:
        raise ValueError(f"{scores.size} scores cannot resolve {target} at {confidence}.")
    return math.nextafter(float(np.sort(scores)[rank - 1]), math.inf)


def one_per_video(videos: Sequence[str], seed: int) -> np.ndarray:
    """Indices of one randomly chosen entry per distinct video, in sorted video order."""
    _, group = np.unique(np.asarray(videos, dtype=str), return_inverse=True)
    order = np.lexsort((np.random.default_rng(seed).random(group.size), group))  # shuffled within each video
    first_of_group = np.flatnonzero(np.diff(group[order], prepend=-1) != 0)
    return order[first_of_group]


def _check_resolvable(num_real: int, num_fake: int, targets: AbstainTargets, unit: str) -> None:
    problems = []
    for rate, target, count, kind in (("fpr", targets.fpr, num_real, "real"),
                                      ("miss", targets.miss, num_fake, "fake")):
        needed = required_units(target, targets.confidence)
        if count < needed:
            problems.append(f"{rate}={percent(target)} needs at least {needed} {kind} {unit}s and there are {count}")
    if problems:
        raise CalibrationError(f"The calibration folder cannot resolve these targets at "
                               f"{percent(targets.confidence)} confidence: {'; '.join(problems)}. Add {unit}s, "
                               "loosen the targets or lower confidence=.")


def abstain_band(is_fake, scores, targets: AbstainTargets, videos: Sequence[str] | None = None,
                 seed: int = 0) -> AbstainBand:
    """The band from calibrated P(fake) of a validation folder (labels 1 = fake), one face per video."""
    is_fake = np.asarray(is_fake).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if is_fake.shape != scores.shape or not np.isfinite(scores).all():
        raise CalibrationError("The abstain band needs one finite score per label.")
    videos = [str(i) for i in range(scores.size)] if videos is None else list(videos)
    if len(videos) != scores.size:
        raise CalibrationError(f"{len(videos)} video ids for {scores.size} scores.")
    chosen = one_per_video(videos, seed)
    real_units, fake_units = scores[chosen][is_fake[chosen] == 0], scores[chosen][is_fake[chosen] == 1]
    unit = "video" if len(chosen) < scores.size else "image"
    _check_resolvable(real_units.size, fake_units.size, targets, unit)
    t_fake = upper_threshold(real_units, targets.fpr, targets.confidence)
    t_real = -upper_threshold(-fake_units, targets.miss, targets.confidence)
    threshold, real_threshold = t_fake, t_real
    if t_real >= t_fake:  # each score is covered by a guarantee: close the band at one cut between them
        threshold = min(max(0.5, t_fake), t_real)
        real_threshold = math.nextafter(threshold, -math.inf)
    band = AbstainBand(threshold, real_threshold, targets.fpr, targets.miss, targets.confidence)
    labels = band.labels(scores)
    real, fake = is_fake == 0, is_fake == 1
    validation = {
        "unit": unit, "real_units": int(real_units.size), "fake_units": int(fake_units.size), "seed": seed,
        "real_images": int(real.sum()), "fake_images": int(fake.sum()),
        "conformal_fake_threshold": t_fake, "conformal_real_threshold": t_real,
        "fpr": float((labels[real] == "fake").mean()), "miss_rate": float((labels[fake] == "real").mean()),
        "uncertain": float((labels == "uncertain").mean()),
        "uncertain_real": float((labels[real] == "uncertain").mean()),
        "uncertain_fake": float((labels[fake] == "uncertain").mean()),
    }
    return AbstainBand(threshold, real_threshold, targets.fpr, targets.miss, targets.confidence, validation)


def format_band(band: AbstainBand) -> str:
    """What `training.calibrate` prints: the thresholds, the guarantee and the share sent to a person."""
    v = band.validation
    unit = v.get("unit", "image")
    confidence = percent(band.confidence)
    per_video = ", one face of each" if unit == "video" else ""
    return "\n".join([
        f"abstain band from {v.get('real_units')} real and {v.get('fake_units')} fake {unit}s{per_video}:",
        f"  P(fake) >= {band.threshold:.4g}: fake   false-positive rate <= {percent(band.fpr_target)} "
        f"with {confidence} confidence",
        f"  P(fake) <= {band.real_threshold:.4g}: real   miss rate <= {percent(band.miss_target)} "
        f"with {confidence} confidence",
        f"  between: uncertain, sent to a person: {v['uncertain']:.1%} of the folder's faces "
        f"({v['uncertain_real']:.1%} of real, {v['uncertain_fake']:.1%} of fake); "
        f"its false-positive rate {v['fpr']:.2%}, miss rate {v['miss_rate']:.2%}",
        f"  (the guarantees are for new faces drawn like these; see training.conformal)"])
