"""Per-track inference: which faces are classified again, which carry their track's score, verdicts per
track, and decisions that do not depend on how frames were batched. A stand-in classifier scores a crop by
its mean brightness, so each face's P(fake) is known in advance."""

import numpy as np
import pytest

from fmca_rt.errors import FMCAError
from fmca_rt.faces import Face, crop_faces
from fmca_rt.latency import LatencyStats
from fmca_rt.video.track_scores import ClassifyPolicy, PerTrackScoring
from fmca_rt.video.tracker import IoUTracker


class BrightnessClassifier:
    """P(fake) = mean pixel / 255 of each crop; records how many crops each call got."""

    threshold, crop_scale = 0.5, 1.0

    def __init__(self):
        self.calls = []

    def crop_faces(self, bgr, faces):
        return crop_faces(bgr, faces, self.crop_scale)

    def classify_crops(self, crops):
        self.calls.append(len(crops))
        return np.array([crop.mean() / 255 for crop in crops])

    def label_for(self, prob):
        return "fake" if prob >= self.threshold else "real"


def frame_with(faces):
    """(box, brightness) pairs -> a 480 x 640 BGR frame with each box filled at that brightness."""
    image = np.zeros((480, 640, 3), np.uint8)
    for (x1, y1, x2, y2), level in faces:
        image[y1:y2, x1:x2] = level
    return image, [Face(box, 0.9) for box, _ in faces]


def run(frames, policy, batch=4):
    """Score (image, faces) frames in batches; -> per-frame (probs, fresh flags), the scoring, the classifier."""
    scoring, tracker, classifier = PerTrackScoring(policy), IoUTracker(), BrightnessClassifier()
    results = {}
    indexed = [(i, image, faces) for i, (image, faces) in enumerate(frames)]
    classifier.calls_per_batch = []
    for start in range(0, len(indexed), batch):
        before = len(classifier.calls)
        results.update(scoring.score(classifier, tracker, indexed[start:start + batch], LatencyStats()))
        classifier.calls_per_batch.append(len(classifier.calls) - before)
    per_frame = [([f.fake_prob for f in results[i][0]], [f.fresh for f in results[i][0]]) for i in range(len(frames))]
    return per_frame, scoring, classifier


def brightness_steps(levels, box=(100, 100, 200, 200)):
    return [frame_with([(box, level)]) for level in levels]


def test_every_n_frames_and_the_score_is_carried_in_between():
    levels = [10, 20, 20, 20, 20, 40, 40, 40, 40, 40, 60, 60]  # the face changes; far from the threshold
    per_frame, scoring, _ = run(brightness_steps(levels), ClassifyPolicy(every=5, margin=0.1))
    assert [fresh[0] for _, fresh in per_frame] == [i % 5 == 0 for i in range(12)]
    carried = [10, 10, 10, 10, 10, 40, 40, 40, 40, 40, 60, 60]
    assert [probs[0] for probs, _ in per_frame] == pytest.approx([v / 255 for v in carried])
    (track,) = scoring.summary(BrightnessClassifier().label_for)["tracks"]
    assert track["frames"] == 12 and track["fresh_scores"] == 3
    assert track["fake_prob"] == pytest.approx(np.mean(carried) / 255, abs=1e-6)
    assert track["label"] == "real" and (track["first_frame"], track["last_frame"]) == (0, 11)


def test_every_1_classifies_every_face_on_every_frame():
    levels = [30, 200, 90, 120, 250, 10]
    per_frame, scoring, classifier = run(brightness_steps(levels), ClassifyPolicy(every=1))
    assert [probs[0] for probs, _ in per_frame] == pytest.approx([v / 255 for v in levels])
    assert all(fresh[0] for _, fresh in per_frame) and classifier.calls == [4, 2]  # batched across frames
    assert scoring.summary(str)["classify"]["classified"] == 6


def test_a_box_that_grows_or_moves_is_classified_again():
    boxes = [(100, 100, 200, 200), (102, 100, 202, 200), (100, 100, 240, 240),   # grows by 40%
             (100, 100, 240, 240), (135, 100, 275, 240), (170, 100, 310, 240)]  # moves 35 px = 0.25 side, then more
    frames = [frame_with([(box, 20)]) for box in boxes]
    per_frame, _, _ = run(frames, ClassifyPolicy(every=100, grow=0.2, move=0.3, margin=0.0))
    assert [fresh[0] for _, fresh in per_frame] == [True, False, True, False, False, True]


def test_a_score_near_the_threshold_is_classified_on_every_frame():
    near, far = 130, 20  # 0.51 and 0.08 against the threshold 0.5
    frames = [frame_with([((50, 50, 150, 150), near), ((300, 50, 400, 150), far)]) for _ in range(6)]
    per_frame, _, classifier = run(frames, ClassifyPolicy(every=10, margin=0.05))
    assert [fresh for _, fresh in per_frame] == [[True, True]] + [[True, False]] * 5
    assert sum(classifier.calls) == 7


def test_a_face_that_looks_different_under_the_same_box_is_classified_again():
    """A cut to another scene under the same box (the whole image with faces="none", a static camera)."""
    levels = [20, 30, 200, 205, 24, 24]  # 30 vs 20: 0.04 apart, carried; 200: 0.7 apart, a cut
    per_frame, scoring, _ = run(brightness_steps(levels), ClassifyPolicy(every=100, margin=0.0, look=0.1))
    assert [fresh[0] for _, fresh in per_frame] == [True, False, True, False, True, False]
    assert [probs[0] for probs, _ in per_frame] == pytest.approx([v / 255 for v in (20, 20, 200, 200, 24, 24)])
    assert scoring.summary(str)["classify"]["look"] == 0.1
    per_frame, _, _ = run(brightness_steps(levels), ClassifyPolicy(every=100, margin=0.0, look=1.0))
    assert [fresh[0] for _, fresh in per_frame] == [True] + [False] * 5  # the rule off: the first score carried


def test_a_score_that_is_not_finite_is_an_error_never_carried():
    class Overflowing(BrightnessClassifier):
        def classify_crops(self, crops):
            return np.array([np.nan if crop.mean() < 15 else crop.mean() / 255 for crop in crops])

    scoring, tracker, classifier = PerTrackScoring(ClassifyPolicy(every=100, margin=0.0, look=1.0)), IoUTracker(), \
        Overflowing()
    frames = [(i, *frame_with([((100, 100, 200, 200), level)])) for i, level in enumerate([10, 60, 60, 60])]
    results = scoring.score(classifier, tracker, frames, LatencyStats())
    faces = [results[i][0][0] for i in range(4)]
    assert [f.label for f in faces] == ["error", "real", "real", "real"] and faces[0].fake_prob is None
    assert [f.fresh for f in faces] == [True, True, False, False]  # classified again on the next frame
    assert faces[3].fake_prob == pytest.approx(60 / 255)
    (track,) = scoring.summary(str)["tracks"]
    assert track["frames"] == 3 and track["fake_prob"] == pytest.approx(60 / 255)  # the error left out


@pytest.mark.parametrize("batch", [2, 3, 5])
def test_decisions_do_not_depend_on_how_frames_were_batched(batch):
    rng = np.random.default_rng(3)
    levels = rng.choice([60, 120, 127, 133, 200], size=(24, 2))  # some tracks hover at the threshold
    frames = [frame_with([((40 + 2 * i, 60, 140 + 2 * i, 160), a), ((300, 200 - i, 380, 280 - i), b)])
              for i, (a, b) in enumerate(levels)]
    policy = ClassifyPolicy(every=4, margin=0.02, look=1.0)  # the near-threshold rule decides between refreshes
    one_by_one, scoring_1, _ = run(frames, policy, batch=1)
    batched, scoring_n, classifier = run(frames, policy, batch=batch)
    assert max(classifier.calls_per_batch) > 1  # waiting crops were classified early, where decisions needed them
    assert batched == one_by_one
    assert scoring_n.summary(str) == scoring_1.summary(str)


def test_bad_policies_are_one_sentence():
    with pytest.raises(FMCAError, match="classify_every must be at least 1 frame, not 0"):
        ClassifyPolicy(every=0)
    with pytest.raises(FMCAError, match="must not be negative"):
        ClassifyPolicy(move=-1)


def test_cli_refuses_classify_every_0_in_one_sentence(capsys, tmp_path):
    from fmca_rt.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["video", str(tmp_path), "--model", str(tmp_path / "absent.onnx"), "--classify-every", "0"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().endswith(
        "error: argument --classify-every: expected a positive whole number, got '0'")


def test_pipeline_marks_fresh_scores_and_lists_tracks(tmp_path):
    import json

    from fmca_rt import Detector

    from sdk_models import tiny_onnx
    from test_sdk_video import moving_face_frames, write_video_folder

    folder = write_video_folder(moving_face_frames(12), tmp_path / "frames")
    with Detector(tiny_onnx(), threshold=0.9) as detector:  # far from the tiny model's P(fake): no margin rule
        run = detector.stream(folder, classify=ClassifyPolicy(every=4), jsonl=tmp_path / "frames.jsonl")
        results = list(run)
        fresh_probs = detector.classify_crops(detector.crop_faces(moving_face_frames(1)[0], [results[0].faces[0].face]))
    assert [r.faces[0].fresh for r in results] == [i % 4 == 0 for i in range(12)]
    assert results[0].faces[0].fake_prob == pytest.approx(float(fresh_probs[0]), abs=1e-6)
    assert all(r.faces[0].fake_prob == results[4 * (r.index // 4)].faces[0].fake_prob for r in results)
    lines = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert [line["faces"][0]["fresh"] for line in lines] == [i % 4 == 0 for i in range(12)]
    summary = run.summary
    assert summary["classify"]["faces"] == 12 and summary["classify"]["classified"] == 3
    (track,) = summary["tracks"]
    assert track["frames"] == 12 and track["fresh_scores"] == 3
    assert track["fake_prob"] == pytest.approx(np.mean([r.fake_prob for r in results]), abs=1e-6)
    assert summary["fake_prob"] == pytest.approx(track["fake_prob"], abs=1e-5)
