"""The robustness report: how a platform's re-encoding moves AUC and the stored operating points.

    python -m training.evaluate --checkpoint best.pth --data DATA --split test --out eval \\
        --perturb jpeg:30,50,70 resize:0.5 blur:1 h264:23,28,35

For the clean folder and each perturbation (training.perturb), the model's P(fake) at its calibrated
temperature gives the frame and video AUC, and each stored operating point (argmax when the model was
never calibrated) and the abstain band give their TPR (fakes labelled fake) and FPR (reals labelled fake),
the band also its miss rate and the share it leaves uncertain. A point "stops holding" when its FPR on the
perturbed real images is above its target: the rate in its name for "fpr@1%", the band's fpr (and its miss
rate above the band's miss target), and for "eer" and "best-accuracy" the FPR they had on the folder they
were calibrated on. Each FPR comes with a one-sided 95% lower confidence bound of the true rate (per video when
videos have several images: see `rate_lower_bound`): when even that is above the target, the excess is more
than this folder's sampling noise.

Writes robustness.json, robustness.png (AUC, TPR and FPR per condition in one figure) and
robustness_predictions.csv (calibrated P(fake) of every image under every condition).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fmca_rt.abstain import ABSTAIN, UNCERTAIN, AbstainBand
from fmca_rt.errors import FMCAError
from fmca_rt.operating_points import ARGMAX_POINT, Calibration, OperatingPoint, fake_class_index, target_fpr

from .dataset import FaceCropDataset
from .metrics import compute_metrics
from .perturb import Perturbation

CLEAN = "clean"


class PerturbedFaceCrops(FaceCropDataset):
    """An evaluation dataset whose images are degraded by one perturbation; a video codec sees whole videos."""

    def __init__(self, dataset: FaceCropDataset, perturbation: Perturbation):
        super().__init__(dataset.items, dataset.config, on_unreadable="skip")
        self.perturbation = perturbation
        self._video_positions: dict[str, list[int]] = {}
        for position in sorted(range(len(self.items)), key=lambda p: self.items[p].sample.path.name):
            self._video_positions.setdefault(self.items[position].video, []).append(position)
        self._cached_video, self._cached_frames = None, {}

    def read_image(self, position: int) -> np.ndarray | None:
        if not self.perturbation.per_video:
            rgb = super().read_image(position)
            return None if rgb is None else self.perturbation.apply([rgb])[0]
        video = self.items[position].video
        if video != self._cached_video:  # evaluation reads in order, so each video is encoded once
            frames = {p: super(PerturbedFaceCrops, self).read_image(p) for p in self._video_positions[video]}
            readable = [p for p, rgb in frames.items() if rgb is not None]
            degraded = self.perturbation.apply([frames[p] for p in readable]) if readable else []
            self._cached_video, self._cached_frames = video, dict(zip(readable, degraded))
        return self._cached_frames.get(position)


def decision_points(calibration: Calibration) -> list[OperatingPoint | AbstainBand]:
    points = list(calibration.points) or [ARGMAX_POINT]
    return points + ([calibration.abstain] if calibration.abstain is not None else [])


def rate_lower_bound(errors: np.ndarray, videos: np.ndarray, level: float = 0.95) -> float | None:
    """A one-sided lower confidence bound of the rate of `errors` (booleans, one per image).

    Images of one video are not independent, so when some video has several images the unit is the video:
    Hoeffding's bound on the mean of the per-video error shares (valid for any [0, 1] values, loose). When
    every image is its own video, the exact Clopper-Pearson bound of a binomial count.
    """
    from scipy.stats import beta

    if errors.size == 0:
        return None
    _, video_index = np.unique(videos, return_inverse=True)
    if video_index.max() + 1 == errors.size:
        count = int(errors.sum())
        return 0.0 if count == 0 else float(beta.ppf(1 - level, count, errors.size - count + 1))
    shares = np.bincount(video_index, errors.astype(np.float64)) / np.bincount(video_index)
    return max(0.0, float(shares.mean() - np.sqrt(np.log(1 / (1 - level)) / (2 * shares.size))))


def point_rates(point: OperatingPoint | AbstainBand, is_fake: np.ndarray, scores: np.ndarray,
                videos: np.ndarray) -> dict:
    labels = point.labels(scores)
    real, fake = is_fake == 0, is_fake == 1
    false_positive = labels[real] == "fake"
    entry = {"name": point.name, "threshold": point.threshold,
             "tpr": float((labels[fake] == "fake").mean()) if fake.any() else None,
             "fpr": float(false_positive.mean()) if real.any() else None,
             "fpr_lower_95": rate_lower_bound(false_positive, videos[real])}
    if isinstance(point, AbstainBand):
        missed = labels[fake] == "real"
        entry.update(real_threshold=point.real_threshold, fpr_target=point.fpr_target, target_from="band",
                     miss_rate=float(missed.mean()) if fake.any() else None,
                     miss_lower_95=rate_lower_bound(missed, videos[fake]),
                     miss_target=point.miss_target, uncertain=float((labels == UNCERTAIN).mean()))
    elif target_fpr(point.name) is not None:
        entry.update(fpr_target=target_fpr(point.name), target_from="name")
    elif point.fpr is not None:
        entry.update(fpr_target=point.fpr, target_from="validation")
    if entry.get("fpr_target") is not None and entry["fpr"] is not None:
        entry["holds"] = entry["fpr"] <= entry["fpr_target"] and (
            entry.get("miss_rate") is None or entry["miss_rate"] <= entry["miss_target"])
    return entry


def condition_row(name: str, dataset: FaceCropDataset, predictions: dict, calibration: Calibration,
                  fake_index: int, points) -> tuple[dict, np.ndarray]:
    """(the report's row for one condition, calibrated P(fake) in prediction order)."""
    scores = calibration.fake_probability(predictions["logits"], fake_index)
    labels = predictions["labels"]
    videos = np.array([dataset.items[i].video for i in predictions["indices"]], dtype=str)
    metrics = compute_metrics(labels, scores, videos=videos.tolist())
    row = {"condition": name, "images": int(labels.size), "videos": int(np.unique(videos).size),
           "unreadable": len(predictions["unreadable"]),
           "frame_auc": metrics["frame"]["auc"], "video_auc": metrics["video"]["auc"],
           "points": [point_rates(p, labels, scores, videos) for p in points]}
    return row, scores


def robustness_report(model, dataset: FaceCropDataset, clean_predictions: dict, perturbations: list[Perturbation],
                      predict_dataset, log=print) -> tuple[dict, dict[str, dict[int, float]]]:
    """(report, condition -> {dataset index: P(fake)}); `predict_dataset(dataset)` runs the model."""
    calibration = Calibration.from_dict(model.calibration, "the checkpoint")
    fake_index = fake_class_index(model.config.class_names)
    points = decision_points(calibration)
    rows, skipped, scores_by_condition = [], [], {}
    for perturbation in [None, *perturbations]:
        name = CLEAN if perturbation is None else perturbation.name
        try:
            if perturbation is None:
                predictions = clean_predictions
            else:
                reason = perturbation.unavailable()
                if reason:
                    raise FMCAError(reason)
                log(f"robustness: {name}")
                predictions = predict_dataset(PerturbedFaceCrops(dataset, perturbation))
        except FMCAError as error:
            skipped.append({"condition": name, "reason": str(error)})
            continue
        row, scores = condition_row(name, dataset, predictions, calibration, fake_index, points)
        rows.append(row)
        scores_by_condition[name] = dict(zip(predictions["indices"].tolist(), scores.tolist()))
    clean_holds = {p["name"]: p.get("holds") for p in rows[0]["points"]}
    exceeded = [{"condition": row["condition"], "point": p["name"], "fpr": p["fpr"], "fpr_target": p["fpr_target"],
                 **({"miss_rate": p["miss_rate"], "miss_target": p["miss_target"]} if p["name"] == ABSTAIN else {}),
                 "beyond_sampling_noise": _beyond_noise(p), "held_on_clean": clean_holds[p["name"]]}
                for row in rows[1:] for p in row["points"] if p.get("holds") is False]
    report = {"temperature": calibration.temperature, "conditions": rows, "skipped": skipped,
              "points_not_holding": exceeded}
    return report, scores_by_condition


def _beyond_noise(entry: dict) -> bool:
    """Whether even the rate's 95% lower bound is above its target (FPR, or the band's miss rate)."""
    return entry["fpr_lower_95"] > entry["fpr_target"] or (
        entry.get("miss_lower_95") is not None and entry["miss_lower_95"] > entry["miss_target"])


def write_predictions(path: Path, dataset: FaceCropDataset, scores_by_condition: dict[str, dict[int, float]]) -> None:
    conditions = list(scores_by_condition)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "video", *(f"fake_probability[{c}]" for c in conditions)])
        for index, item in enumerate(dataset.items):
            values = [scores_by_condition[c].get(index) for c in conditions]
            writer.writerow([item.sample.path, item.label, item.video,
                             *("" if v is None else f"{v:.17g}" for v in values)])  # exact: thresholds re-apply


def format_report(report: dict) -> str:
    """The table `training.evaluate --perturb` prints, then which points stop holding."""
    rows = report["conditions"]
    names = [p["name"] for p in rows[0]["points"]] if rows else []
    header = f"{'condition':<12} {'frame AUC':>9} {'video AUC':>9}" + "".join(
        f"  {name + (' TPR/FPR/miss/unc.' if name == ABSTAIN else ' TPR/FPR'):>26}" for name in names)
    lines = [f"robustness at temperature {report['temperature']:.4g} (* = FPR above its target):", header]
    for row in rows:
        cells = []
        for p in row["points"]:
            text = f"{_pct(p['tpr'])}/{_pct(p['fpr'])}"
            if p["name"] == ABSTAIN:
                text += f"/{_pct(p['miss_rate'])}/{_pct(p['uncertain'])}"
            cells.append(text + ("*" if p.get("holds") is False else " "))
        lines.append(f"{row['condition']:<12} {_num(row['frame_auc']):>9} {_num(row['video_auc']):>9}" +
                     "".join(f"  {cell:>26}" for cell in cells))
    for entry in report["skipped"]:
        lines.append(f"skipped {entry['condition']}: {entry['reason']}")
    failing = report["points_not_holding"]
    if not failing:
        lines.append("Every operating point kept its FPR target under every perturbation that ran.")
    for entry in failing:
        miss = (f", miss rate {_pct(entry['miss_rate'])} for a target of {_pct(entry['miss_target'])}"
                if "miss_rate" in entry else "")
        noise = ("beyond sampling noise" if entry["beyond_sampling_noise"] else
                 "the 95% lower bound is within target: could be this folder's sampling noise")
        clean = "" if entry["held_on_clean"] else "; it was above target on the clean images too"
        lines.append(f"{entry['point']} stops holding under {entry['condition']}: FPR {_pct(entry['fpr'])} for a "
                     f"target of {_pct(entry['fpr_target'])}{miss} ({noise}{clean})")
    return "\n".join(lines)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
