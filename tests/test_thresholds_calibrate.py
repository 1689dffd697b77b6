"""`python -m training.calibrate` and the function behind it."""

import json

import cv2
import numpy as np
import pytest
import torch

from fmca_rt.operating_points import Calibration
from training import FMCANet
from training.calibrate import calibrate, main
from training.checkpoint import read_checkpoint
from training.thresholds import operating_points


def test_calibrate_fits_t_and_puts_the_points_on_the_calibrated_probability():
    rng = np.random.default_rng(0)
    margin = rng.normal(0.0, 2.0, 4000)
    is_fake = (rng.random(4000) < 1 / (1 + np.exp(-margin))).astype(int)
    logits = np.stack([-1.5 * margin, 1.5 * margin], axis=1)  # margin 3x too large: overconfident
    calibration, diagrams = calibrate(logits, is_fake, target_fprs=(0.01, 0.1))
    assert calibration.temperature == pytest.approx(3.0, rel=0.1)
    source = calibration.source
    assert source["nll_after"] < source["nll_before"] and source["ece_after"] < source["ece_before"]
    assert (source["num_real"], source["num_fake"]) == ((is_fake == 0).sum(), is_fake.sum())
    calibrated = calibration.fake_probability(logits, 1)
    assert calibration.points == operating_points(is_fake, calibrated, (0.01, 0.1))
    assert [p.name for p in calibration.points] == ["eer", "fpr@1%", "fpr@10%", "best-accuracy"]
    assert diagrams["after"].expected_calibration_error == source["ece_after"]


def test_class_order_is_taken_from_the_model():
    logits = np.array([[2.0, -1.0], [-1.0, 2.0], [0.5, 0.0], [0.0, 0.3]])
    is_fake = np.array([1, 0, 1, 0])
    swapped, _ = calibrate(logits, is_fake, class_names=("fake", "real"))
    straight, _ = calibrate(logits[:, ::-1], is_fake)
    assert swapped.temperature == pytest.approx(straight.temperature)


def write_folder(root, count=6, size=64):
    rng = np.random.default_rng(1)
    for label in ("real", "fake"):
        (root / "valid" / label).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / "valid" / label / f"{label}_{i}.png"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_command_writes_a_calibrated_copy_and_its_report(tmp_path, capsys):
    write_folder(tmp_path / "data")
    torch.manual_seed(0)
    FMCANet.from_preset("tiny", image_size=56).save_checkpoint(tmp_path / "model.pth", epoch=3)
    assert main(["--checkpoint", str(tmp_path / "model.pth"), "--data", str(tmp_path / "data"), "--fpr", "10"]) == 0
    calibrated = read_checkpoint(tmp_path / "model-calibrated.pth")
    assert calibrated["epoch"] == 3 and "calibration" not in read_checkpoint(tmp_path / "model.pth")
    stored = Calibration.from_dict(calibrated["calibration"])
    assert [p.name for p in stored.points] == ["eer", "fpr@10%", "best-accuracy"]
    assert FMCANet.from_checkpoint(tmp_path / "model-calibrated.pth").calibration == calibrated["calibration"]
    report_dir = tmp_path / "model-calibrated-calibration"
    assert json.loads((report_dir / "calibration.json").read_text())["temperature"] == stored.temperature
    assert cv2.imread(str(report_dir / "reliability.png")) is not None
    printed = capsys.readouterr().out
    assert "temperature" in printed and "(6 real, 6 fake images; one false positive is 16.67% FPR)" in printed


def test_command_errors_are_one_sentence(tmp_path, capsys):
    FMCANet.from_preset("tiny", image_size=56).save_checkpoint(tmp_path / "model.pth")
    assert main(["--checkpoint", str(tmp_path / "model.pth"), "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "data" / "valid" / "real").mkdir(parents=True)
    assert main(["--checkpoint", str(tmp_path / "model.pth"), "--data", str(tmp_path / "data")]) == 2
    assert "fake" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", "x.pth", "--data", "d", "--fpr", "150"])


def test_evaluation_reports_the_operating_points_at_the_model_temperature(tmp_path):
    from dataclasses import asdict

    from training.data import load_split
    from training.dataset import FaceCropDataset, Item
    from training.evaluate import evaluation_report, predict

    write_folder(tmp_path)
    torch.manual_seed(0)
    model = FMCANet.from_preset("tiny", image_size=56)
    dataset = FaceCropDataset([Item(s) for s in load_split(tmp_path, "valid")], model.config, on_unreadable="skip")
    predictions = predict(model, dataset, batch_size=4)
    logits = predictions["logits"]
    np.testing.assert_allclose(Calibration().fake_probability(logits, 1), predictions["probabilities"], atol=1e-6)
    report = evaluation_report(dataset, predictions, temperature=2.0)
    expected = operating_points(predictions["labels"], Calibration(2.0).fake_probability(logits, 1))
    assert report["temperature"] == 2.0 and report["operating_points"] == [asdict(p) for p in expected]


def test_a_temperature_at_its_bound_is_reported(tmp_path, capsys):
    write_folder(tmp_path / "data")
    model = FMCANet.from_preset("tiny", image_size=56)
    with torch.no_grad():  # a constant model: its logits say nothing about the labels
        model.fuse_head[-1].weight.zero_()
    model.save_checkpoint(tmp_path / "model.pth")
    assert main(["--checkpoint", str(tmp_path / "model.pth"), "--data", str(tmp_path / "data")]) == 0
    assert "top of its range" in capsys.readouterr().err
