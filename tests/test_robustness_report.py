"""On a small trained demo model: `training.calibrate --abstain` and `training.evaluate --perturb`, their numbers
checked against direct computations from the per-image scores and, for one image, the model run by hand.

The demo model is the session's shared one (tests/demo_model.py: `make demo`'s recipe at 112 px on 128
images per class). Demo folders drawn with two other seeds serve for calibration and for the evaluation.
"""

import csv
import json
from collections import defaultdict

import cv2
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from fmca_rt.abstain import AbstainBand
from fmca_rt.operating_points import Calibration, fake_class_index
from fmca_rt.preprocess import preprocess, resize_rgb
from training.calibrate import main as calibrate_main
from training.checkpoint import read_checkpoint
from training.demo_data import generate
from training.evaluate import main as evaluate_main
from training.model import FMCANet
from training.robustness import rate_lower_bound

torch = pytest.importorskip("torch")
CONDITIONS = ["clean", "jpeg:30", "resize:0.5", "blur:2", "h264:35"]


@pytest.fixture(scope="module")
def demo(demo_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    (root / "run").symlink_to(demo_model.run)
    for name, seed in (("calib", 1), ("test", 2)):
        generate(root / name, count=64, size=112, seed=seed)
    assert calibrate_main(["--checkpoint", str(root / "run" / "best.pth"), "--data", str(root / "calib"), "--split",
                           "train", "--fpr", "10", "25", "--abstain", "fpr=20%,miss=20%,confidence=80%",
                           "--out", str(root / "calibrated.pth")]) == 0
    return root


def test_calibrate_stores_the_band_it_prints(demo, capsys):
    stored = read_checkpoint(demo / "calibrated.pth")["calibration"]
    band = Calibration.from_dict(stored).abstain
    assert (band.fpr_target, band.miss_target, band.confidence) == (0.2, 0.2, 0.8)
    assert band.validation["unit"] == "video" and band.validation["real_units"] == 16  # 64 images, 4 per video
    report = json.loads((demo / "calibrated-calibration" / "calibration.json").read_text())
    assert AbstainBand.from_dict(report["abstain"]) == band


def test_calibrate_refuses_targets_the_folder_cannot_resolve(demo, capsys):
    out = demo / "refused.pth"
    assert calibrate_main(["--checkpoint", str(demo / "run" / "best.pth"), "--data", str(demo / "calib"),
                           "--split", "train", "--abstain", "fpr=1%,miss=5%", "--out", str(out)]) == 2
    assert ("fpr=1% needs at least 299 real videos and there are 16; miss=5% needs at least 59 fake videos "
            "and there are 16") in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        calibrate_main(["--checkpoint", "x.pth", "--data", "d", "--abstain", "fpr=1"])


def read_scores(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) for r in rows])
    scores = {c: np.array([float(r[f"fake_probability[{c}]"]) for r in rows]) for c in CONDITIONS}
    return rows, labels, scores


def per_video(values, videos):
    grouped = defaultdict(list)
    for value, video in zip(values, videos):
        grouped[video].append(value)
    return grouped


def test_lower_bounds_cover_the_true_rate():
    """Clopper-Pearson for independent images, Hoeffding over videos when frames share a video: over many
    draws with a known rate, the 95% lower bound stays below it at least 95% of the time."""
    rng = np.random.default_rng(0)
    covered = {"images": 0, "videos": 0}
    for _ in range(2000):
        errors = rng.random(200) < 0.1
        covered["images"] += rate_lower_bound(errors, np.arange(200).astype(str)) <= 0.1
        video_rate = rng.beta(1, 9, 50)  # rates vary by video; the mean rate is 0.1
        frames = rng.random((50, 4)) < video_rate[:, None]
        covered["videos"] += rate_lower_bound(frames.ravel(), np.repeat(np.arange(50), 4).astype(str)) <= 0.1
    assert covered["images"] / 2000 >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / 2000) and covered["videos"] / 2000 >= 0.95
    errors = np.r_[np.ones(7, bool), np.zeros(93, bool)]
    bound = rate_lower_bound(errors, np.arange(100).astype(str))
    assert stats.binom.sf(6, 100, bound) == pytest.approx(0.05)  # P(7 or more errors at that rate) is 5%


def video_auc(labels, scores, videos):
    grouped = defaultdict(list)
    for label, score, video in zip(labels, scores, videos):
        grouped[video].append((label, score))
    return roc_auc_score([v[0][0] for v in grouped.values()], [np.mean([s for _, s in v]) for v in grouped.values()])


@pytest.fixture(scope="module")
def evaluated(demo):
    out = demo / "eval"
    code = evaluate_main(["--checkpoint", str(demo / "calibrated.pth"), "--data", str(demo / "test"), "--split",
                          "train", "--out", str(out), "--perturb", "jpeg:30", "resize:0.5", "blur:2", "h264:35"])
    return code, out


def test_report_numbers_equal_a_direct_computation(demo, evaluated):
    pytest.importorskip("av", reason="the h264 condition needs PyAV (pip install av)")
    code, out = evaluated
    assert code == 0
    report = json.loads((out / "robustness.json").read_text())
    assert [row["condition"] for row in report["conditions"]] == CONDITIONS and report["skipped"] == []
    rows, labels, scores = read_scores(out / "robustness_predictions.csv")
    calibration = Calibration.from_dict(read_checkpoint(demo / "calibrated.pth")["calibration"])
    real, fake = labels == 0, labels == 1
    videos = np.array([r["video"] for r in rows])
    assert report["conditions"][0]["frame_auc"] == pytest.approx(json.loads((out / "report.json").read_text())
                                                                 ["frame"]["auc"], abs=1e-12)
    expected_failures = []
    for row in report["conditions"]:
        s = scores[row["condition"]]
        assert row["frame_auc"] == pytest.approx(roc_auc_score(labels, s), abs=1e-12)
        assert row["video_auc"] == pytest.approx(video_auc(labels, s, [r["video"] for r in rows]), abs=1e-12)
        points = list(calibration.points) + [calibration.abstain]
        assert [p["name"] for p in row["points"]] == ["eer", "fpr@10%", "fpr@25%", "best-accuracy", "abstain"]
        for entry, point in zip(row["points"], points):
            flagged = s >= point.threshold
            assert entry["tpr"] == pytest.approx(flagged[fake].mean()) and entry["fpr"] == pytest.approx(flagged[real].mean())
            shares = [np.mean(v) for v in per_video(flagged[real], videos[real]).values()]
            assert len(shares) == 16  # real videos of 4 frames: the lower bound is Hoeffding's over videos
            assert entry["fpr_lower_95"] == pytest.approx(max(0, np.mean(shares) - np.sqrt(np.log(20) / (2 * 16))))
            target = {"fpr@10%": 0.1, "fpr@25%": 0.25, "abstain": 0.2}.get(point.name) or point.fpr
            assert entry["fpr_target"] == pytest.approx(target)
            holds = flagged[real].mean() <= target
            if point.name == "abstain":
                cleared = s <= point.real_threshold
                assert entry["miss_rate"] == pytest.approx(cleared[fake].mean())
                assert entry["uncertain"] == pytest.approx((~flagged & ~cleared).mean())
                holds = holds and cleared[fake].mean() <= 0.2
            assert entry["holds"] == holds
            if not holds and row["condition"] != "clean":
                expected_failures.append((row["condition"], point.name))
    assert [(e["condition"], e["point"]) for e in report["points_not_holding"]] == expected_failures
    assert cv2.imread(str(out / "robustness.png")) is not None


def test_each_condition_reaches_the_model(demo, evaluated):
    """The blur condition's score of one image equals the model run by hand on that image blurred by SciPy;
    every perturbation moves the scores."""
    from scipy.ndimage import gaussian_filter

    pytest.importorskip("av", reason="the h264 condition needs PyAV (pip install av)")
    _, out = evaluated
    rows, _, scores = read_scores(out / "robustness_predictions.csv")
    model = FMCANet.from_checkpoint(demo / "calibrated.pth")
    config = model.config
    rgb = cv2.imread(rows[0]["path"])[..., ::-1].astype(np.float64)
    blurred = np.clip(np.round(gaussian_filter(rgb, sigma=(2, 2, 0), mode="mirror", truncate=3.0)), 0, 255)
    pixels = preprocess([resize_rgb(blurred.astype(np.uint8), config.image_size, config.preprocessing)],
                        config.image_size, config.mean, config.std, config.preprocessing)
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels)).numpy()
    calibration = Calibration.from_dict(model.calibration)
    by_hand = calibration.fake_probability(logits, fake_class_index(config.class_names))[0]
    assert scores["blur:2"][0] == pytest.approx(by_hand, abs=5e-3)
    for condition in CONDITIONS[1:]:
        assert np.abs(scores[condition] - scores["clean"]).mean() > 1e-3, condition


def test_a_condition_that_cannot_run_is_one_sentence_and_exit_1(demo, tmp_path, monkeypatch, capsys):
    from training.perturb import Perturbation

    monkeypatch.setattr(Perturbation, "unavailable",
                        lambda self: "H.264 needs PyAV." if self.kind == "h264" else None)
    code = evaluate_main(["--checkpoint", str(demo / "calibrated.pth"), "--data", str(demo / "test"), "--split",
                          "valid", "--out", str(tmp_path), "--perturb", "h264:23", "jpeg:50"])
    assert code == 1
    report = json.loads((tmp_path / "robustness.json").read_text())
    assert [row["condition"] for row in report["conditions"]] == ["clean", "jpeg:50"]
    assert report["skipped"] == [{"condition": "h264:23", "reason": "H.264 needs PyAV."}]
    printed = capsys.readouterr()
    assert "skipped h264:23: H.264 needs PyAV." in printed.out and "Traceback" not in printed.err
    with pytest.raises(SystemExit):
        evaluate_main(["--checkpoint", "x.pth", "--data", "d", "--out", "o", "--perturb", "jpeg:500"])
