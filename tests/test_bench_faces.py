"""The face detector comparison: how detections are matched to faces, and the scenes it is measured on."""

import hashlib

import numpy as np
import pytest

from fmca_rt.bench.faces import match, run
from fmca_rt.bench.face_scenes import PlacedFace, SCENES, face_scenes
from fmca_rt.faces import Face


def placed(x, y, size):
    return PlacedFace((x, y), size, 0, "upright", "astronaut")


def box(x, y, side):
    return Face((x - side // 2, y - side // 2, x + side // 2, y + side // 2), 0.9)


def test_a_detection_counts_once_for_the_closest_face_within_tolerance():
    faces = [placed(100, 100, 100), placed(400, 100, 50)]
    found, false = match(faces, [box(130, 100, 100), box(100, 100, 90), box(400, 100, 40)])
    assert found == [True, True] and false == 1  # two boxes on the first face: the farther one is false
    found, false = match(faces, [box(145, 100, 100)])  # centre 0.45 face heights away
    assert found == [False, False] and false == 1
    found, false = match(faces, [box(400, 100, 110), box(400, 100, 20)])  # 2.2x and 0.4x the face's size
    assert found == [False, False] and false == 2


@pytest.fixture(scope="module")
def scenes():
    return face_scenes()


def test_scenes_hold_every_face_of_the_plan_inside_the_frame(scenes):
    planned = sorted((c, size, angle) for c, faces in SCENES.items() for size, angle in faces)
    made = sorted((f.condition, f.size, f.angle) for s in scenes for f in s.faces)
    assert made == planned
    for scene in scenes:
        assert scene.image.shape == (720, 1280, 3)
        for face in scene.faces:
            assert face.size / 2 <= face.centre[0] <= 1280 - face.size / 2 or face.size > 360
            assert 0 < face.centre[1] < 720


def test_the_comparison_scores_a_perfect_and_a_blind_detector(scenes):
    class Oracle:
        """Finds exactly the placed faces of the scene it is shown."""

        def __init__(self, scenes):
            self.truth = {hashlib.sha1(scene.image.tobytes()).digest(): scene.faces for scene in scenes}

        def detect(self, bgr):
            faces = self.truth.get(hashlib.sha1(bgr.tobytes()).digest(), [])
            return [box(int(f.centre[0]), int(f.centre[1]), f.size) for f in faces]

    class Blind:
        def detect(self, bgr):
            return []

    result = run({"oracle": Oracle(scenes), "blind": Blind()}, repeats=1)
    oracle, blind = result["detectors"]["oracle"], result["detectors"]["blind"]
    assert oracle["recall"] == 1.0 and oracle["acceptance_recall"] == 1.0 and oracle["false_per_frame"] == 0
    assert blind["recall"] == 0.0 and blind["false_per_no_face_photo"] == 0
    assert oracle["acceptance_faces"] == sum(1 for faces in SCENES.values() for size, _ in faces if size >= 48) - \
        sum(1 for size, _ in SCENES["occluded"] if size >= 48)
    assert np.isfinite(oracle["ms_per_frame_p50"])
