"""The Detector uses the model's calibration: named operating points, temperature-scaled P(fake), and says which."""

import json

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.cli import main as cli_main
from fmca_rt.errors import CalibrationError
from fmca_rt.faces import crop_faces
from fmca_rt.operating_points import Calibration, OperatingPoint
from fmca_rt.preprocess import preprocess

from sdk_images import grace_hopper_bgr, grace_hopper_path

torch = pytest.importorskip("torch")
TEMPERATURE = 2.5
POINTS = (OperatingPoint("eer", 0.41, 0.9, 0.1), OperatingPoint("fpr@1%", 0.83, 0.62, 0.01))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(uncalibrated .pth, calibrated .pth, calibrated .onnx) of one tiny seeded model."""
    from export.onnx import export_onnx
    from training import FMCANet

    folder = tmp_path_factory.mktemp("calibrated")
    torch.manual_seed(0)
    model = FMCANet.from_preset("tiny", image_size=112)
    model.save_checkpoint(folder / "plain.pth")
    model.calibration = Calibration(TEMPERATURE, POINTS).to_dict()
    model.save_checkpoint(folder / "calibrated.pth")
    return folder / "plain.pth", folder / "calibrated.pth", export_onnx(folder / "calibrated.pth", folder / "m.onnx")


def oracle_probability(checkpoint, bgr, face):
    """Temperature-scaled P(fake) of a face straight from the PyTorch model."""
    from training import FMCANet

    model = FMCANet.from_checkpoint(checkpoint)
    crop = crop_faces(bgr, [face])[0]
    pixels = preprocess([crop], model.config.image_size, model.config.mean, model.config.std)
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels))[0].double()
    return torch.sigmoid((logits[1] - logits[0]) / TEMPERATURE).item()


@pytest.mark.parametrize("which", [1, 2], ids=["torch", "onnxruntime"])
def test_named_operating_point_and_temperature_come_from_the_model(models, which):
    with Detector(models[which], threshold="FPR@1%") as detector:
        result = detector.predict(grace_hopper_path())
    assert detector.threshold == 0.83 and result.operating_point == POINTS[1]
    assert result.faces[0].fake_prob == pytest.approx(oracle_probability(models[1], grace_hopper_bgr(), result.faces[0].face), abs=1e-5)
    assert result.label == ("fake" if result.fake_prob >= 0.83 else "real")
    assert result.to_dict()["operating_point"] == {"name": "fpr@1%", "threshold": 0.83}


def test_numbers_argmax_and_unknown_names(models):
    with Detector(models[2], threshold=0.7) as detector:
        assert detector.operating_point.name == "P(fake)>=0.7"
    with Detector(models[2]) as detector:
        assert detector.operating_point.name == "argmax" and detector.threshold == 0.5
    with pytest.raises(CalibrationError, match="this model has: argmax, eer, fpr@1%"):
        Detector(models[2], threshold="fpr@3%")
    with pytest.raises(CalibrationError, match="python -m training.calibrate"):
        Detector(models[0], threshold="eer")


def test_cli_threshold_by_name_and_explanations(models, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = cli_main(["predict", str(grace_hopper_path()), "--model", str(models[2]), "--threshold", "eer",
                     "--json", str(out), "--explain", str(tmp_path / "why"), "--explain-stride", "2", "-q"])
    assert code == 0
    assert json.loads(out.read_text())[0]["operating_point"] == {"name": "eer", "threshold": 0.41}
    assert [p.name for p in (tmp_path / "why").iterdir()] == ["grace_hopper_face0.png"]
    assert "operating point eer (P(fake) >= 0.41" in capsys.readouterr().out
    assert cli_main(["predict", str(grace_hopper_path()), "--model", str(models[2]), "--threshold", "fpr@7%"]) == 2
    assert "Unknown operating point 'fpr@7%'" in capsys.readouterr().err
