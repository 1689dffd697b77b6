"""A face whose logits are not finite (an overflowing engine, a broken model) is an error, never a verdict."""

import json
import math

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.cli import main

from crafted_models import mean_log_model, oracle_fake_prob
from test_sdk_video import write_video_folder

BRIGHT, DARK, MID = 200, 60, 128  # DARK: log of a negative mean -> NaN; MID: P(fake) just above 0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mean_log_model(tmp_path_factory.mktemp("model") / "mean_log.onnx")


def grey(level: int) -> np.ndarray:
    return np.full((40, 50, 3), level, np.uint8)


def test_non_finite_output_makes_that_image_an_error_and_the_others_keep_their_verdicts(model):
    with Detector(model, faces="none", threshold=0.25) as detector:
        bright, dark, mid = detector.predict_batch([grey(BRIGHT), grey(DARK), grey(MID)])
        probabilities = detector.classify_crops([grey(DARK)[:, :, ::-1], grey(BRIGHT)])
    assert bright.fake_prob == pytest.approx(oracle_fake_prob(BRIGHT), abs=1e-6) and bright.label == "fake"
    assert mid.fake_prob == pytest.approx(oracle_fake_prob(MID), abs=1e-6) and mid.label == "real"
    assert dark.label == "error" and not dark.ok and dark.fake_prob is None and "not finite" in dark.error
    assert [f.label for f in dark.faces] == ["error"] and dark.faces[0].fake_prob is None
    record = json.loads(dark.to_json())  # valid JSON: no NaN
    assert record["label"] == "error" and record["faces"][0]["fake_prob"] is None
    assert math.isnan(probabilities[0]) and probabilities[1] == pytest.approx(oracle_fake_prob(BRIGHT), abs=1e-6)
    assert detector.label_for(float("nan")) == "error"


def test_an_infinite_logit_is_no_verdict_either(tmp_path):
    model = mean_log_model(tmp_path / "relu.onnx", relu=True)  # dark: logits [0, -inf], softmax says P(fake) = 0
    with Detector(model, faces="none") as detector:
        dark, bright = detector.predict_batch([grey(DARK), grey(BRIGHT)])
    assert dark.label == "error" and dark.fake_prob is None and "not finite" in dark.error
    assert bright.fake_prob == pytest.approx(oracle_fake_prob(BRIGHT), abs=1e-6)


def test_cli_counts_unscored_images_and_exits_1(model, tmp_path, capsys):
    import cv2

    for name, level in (("bright.png", BRIGHT), ("dark.png", DARK)):
        cv2.imwrite(str(tmp_path / name), grey(level))
    out = tmp_path / "r.json"
    assert main(["predict", str(tmp_path / "bright.png"), str(tmp_path / "dark.png"), "--model", str(model),
                 "--faces", "none", "--threshold", "0.25", "--json", str(out)]) == 1
    records = {r["source"].rsplit("/", 1)[-1]: r for r in json.loads(out.read_text())}
    assert records["dark.png"]["label"] == "error" and records["bright.png"]["label"] == "fake"
    captured = capsys.readouterr()
    assert "1 not scored (non-finite model output)" in captured.out and "dark.png: error:" in captured.err


def test_video_leaves_unscored_frames_out_of_the_verdict_and_counts_them(model, tmp_path, capsys):
    folder = write_video_folder([grey(BRIGHT), grey(DARK), grey(BRIGHT), grey(DARK)], tmp_path / "frames")
    summary_path, jsonl = tmp_path / "s.json", tmp_path / "f.jsonl"
    assert main(["video", str(folder), "--model", str(model), "--faces", "none", "--threshold", "0.25", "--summary", str(summary_path),
                 "--jsonl", str(jsonl)]) == 1
    summary = json.loads(summary_path.read_text())
    assert summary["unscored_frames"] == 2 and summary["frames_with_faces"] == 2
    assert summary["fake_prob"] == pytest.approx(oracle_fake_prob(BRIGHT), abs=1e-5) and summary["label"] == "fake"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["fake_prob"] is None for line in lines] == [False, True, False, True]
    assert lines[1]["faces"][0]["label"] == "error" and "not finite" in lines[1]["error"]
    assert "2 not scored" in capsys.readouterr().out


def test_a_video_with_only_unscored_frames_is_labelled_error(model, tmp_path):
    folder = write_video_folder([grey(DARK)] * 3, tmp_path / "frames")
    with Detector(model, faces="none") as detector:
        summary = detector.stream(folder).run()
    assert summary["label"] == "error" and summary["fake_prob"] is None and summary["unscored_frames"] == 3
