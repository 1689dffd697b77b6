"""Named operating points: lookup by name or number, calibrated P(fake), storage round trip."""

import numpy as np
import pytest

from fmca_rt.operating_points import (ARGMAX_POINT, Calibration, CalibrationError, OperatingPoint,
                                      canonical_point_name, fake_class_index)

CALIBRATION = Calibration(2.0, (OperatingPoint("eer", 0.4, 0.9, 0.1), OperatingPoint("fpr@1%", 0.8, 0.6, 0.01)),
                          {"num_real": 100})


@pytest.mark.parametrize("spelling", ["fpr@1%", "FPR@1.0%", " fpr@1.00% "])
def test_names_are_found_whatever_the_spelling(spelling):
    assert CALIBRATION.operating_point(spelling).threshold == 0.8


def test_numbers_none_and_argmax():
    assert CALIBRATION.operating_point(None) is ARGMAX_POINT
    assert CALIBRATION.operating_point("argmax") is ARGMAX_POINT
    point = CALIBRATION.operating_point(0.7)
    assert point.threshold == 0.7 and point.name == "P(fake)>=0.7"
    assert CALIBRATION.operating_point(np.float32(0.25)).threshold == 0.25
    assert canonical_point_name("best_accuracy") == "best-accuracy"


@pytest.mark.parametrize("spec, message", [
    ("fpr@2%", "argmax, eer, fpr@1%"), (1.5, "between 0 and 1"), (-0.1, "between 0 and 1"),
    ([0.5], "not a list")])
def test_bad_threshold_is_one_clear_error(spec, message):
    with pytest.raises(CalibrationError, match=message):
        CALIBRATION.operating_point(spec)


def test_uncalibrated_model_names_the_fix():
    with pytest.raises(CalibrationError, match="python -m training.calibrate"):
        Calibration().operating_point("eer")


def test_fake_probability_is_temperature_scaled_softmax():
    logits = np.array([[0.0, 3.0], [40.0, -40.0], [1.0, 1.0]], dtype=np.float32)
    margin = logits[:, 1].astype(np.float64) - logits[:, 0]
    expected = 1 / (1 + np.exp(-margin / 2.0))
    np.testing.assert_allclose(CALIBRATION.fake_probability(logits, 1), expected, rtol=1e-12)
    assert fake_class_index(("real", "fake")) == 1 and fake_class_index(("Fake", "real")) == 0
    assert fake_class_index(("a", "b", "c")) == 2


def test_round_trip_and_unreadable_storage():
    assert Calibration.from_dict(CALIBRATION.to_dict()) == CALIBRATION
    assert Calibration.from_dict(None) == Calibration()
    with pytest.raises(CalibrationError, match="unreadable"):
        Calibration.from_dict({"points": []}, source="x.onnx")
    with pytest.raises(CalibrationError, match="stored in x.onnx is unreadable"):
        Calibration.from_dict({"temperature": 1.0, "points": [{"name": "eer", "threshold": "high"}]}, source="x.onnx")
    with pytest.raises(CalibrationError, match="positive"):
        Calibration(-1.0)
