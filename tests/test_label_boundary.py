"""The label boundary: a face whose P(fake) is exactly the threshold is "fake" (operating points use >=).

The threshold is set to a P(fake) the trained test model actually produces, so the comparison is made on the
very float the Detector computes, for a face, an image, a video frame and a video verdict.
"""

import cv2
import numpy as np
import pytest

from fmca_rt import Detector

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def face_and_its_score(demo_onnx, held_out):
    bgr = np.ascontiguousarray(held_out.crops[0][:, :, ::-1])
    with Detector(demo_onnx, faces="none") as detector:
        return bgr, detector.predict(bgr).fake_prob


def test_a_face_exactly_at_the_threshold_is_fake_and_just_above_it_is_real(demo_onnx, face_and_its_score):
    bgr, score = face_and_its_score
    with Detector(demo_onnx, faces="none", threshold=score) as at:
        result = at.predict(bgr)
    assert result.fake_prob == score and result.faces[0].label == "fake" and result.label == "fake"
    with Detector(demo_onnx, faces="none", threshold=float(np.nextafter(score, 1.0))) as above:
        result = above.predict(bgr)
    assert result.fake_prob == score and result.label == "real"


def test_a_video_frame_and_verdict_exactly_at_the_threshold_are_fake(demo_onnx, face_and_its_score, tmp_path):
    bgr, score = face_and_its_score
    cv2.imwrite(str(tmp_path / "frame_0.png"), bgr)
    with Detector(demo_onnx, faces="none", threshold=score) as detector:
        run = detector.stream(str(tmp_path / "frame_*.png"))
        (frame,) = list(run)
    assert frame.fake_prob == score and frame.faces[0].label == "fake"
    assert run.summary["fake_prob"] == round(score, 6) and run.summary["label"] == "fake"
