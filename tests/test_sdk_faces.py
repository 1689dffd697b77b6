"""Face detection on the real photos packages ship, and the crop geometry."""

import cv2
import numpy as np
import pytest

from fmca_rt.errors import FaceDetectorError
from fmca_rt.faces import (Face, FaceDetector, HaarFaceDetector, WholeImage, YuNetFaceDetector,
                           crop_faces, make_face_detector, square_crop_box)

from sdk_images import astronaut_bgr, grace_hopper_bgr

# Where the face is in each photo (x1, y1, x2, y2), read off the images by eye with generous margins.
PHOTOS = {
    "grace_hopper": (grace_hopper_bgr, (140, 80, 390, 350)),
    "astronaut": (astronaut_bgr, (160, 50, 290, 180)),
}


def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_haar_finds_the_one_face_in_each_photo(name):
    load, region = PHOTOS[name]
    faces = HaarFaceDetector().detect(load())
    assert len(faces) == 1
    cx, cy = centre(faces[0].box)
    assert region[0] < cx < region[2] and region[1] < cy < region[3]
    assert 0.5 <= faces[0].score <= 1.0


def test_haar_finds_the_face_in_an_enormous_image_and_scales_the_box_back():
    bgr = grace_hopper_bgr()
    big = cv2.resize(bgr, (bgr.shape[1] * 8, bgr.shape[0] * 8), interpolation=cv2.INTER_LINEAR)
    small_box = HaarFaceDetector().detect(bgr)[0].box
    big_box = HaarFaceDetector().detect(big)[0].box
    assert np.allclose(np.array(big_box) / 8, small_box, atol=15)


def test_no_face_in_a_flat_image():
    assert HaarFaceDetector().detect(np.full((300, 300, 3), 90, np.uint8)) == []


def test_square_crop_is_1_3_times_the_longer_side_around_the_centre():
    assert square_crop_box((100, 100, 200, 160), (1000, 1000)) == (85, 65, 215, 195)


def test_square_crop_is_clipped_at_the_borders():
    assert square_crop_box((0, 0, 100, 100), (120, 110)) == (0, 0, 110, 115)


def test_crop_faces_returns_rgb_crops():
    bgr = np.zeros((100, 100, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR
    (crop,) = crop_faces(bgr, [Face((40, 40, 60, 60), 1.0)])
    assert crop.shape == (26, 26, 3)
    assert crop[0, 0].tolist() == [0, 0, 255]


def test_whole_image_detector_returns_the_full_frame():
    assert WholeImage().detect(np.zeros((20, 30, 3), np.uint8)) == [Face((0, 0, 30, 20), 1.0)]


def test_make_face_detector_choices(tmp_path):
    assert isinstance(make_face_detector("haar"), HaarFaceDetector)
    assert isinstance(make_face_detector("none"), WholeImage)
    custom = WholeImage()
    assert make_face_detector(custom) is custom
    assert isinstance(custom, FaceDetector)
    with pytest.raises(FaceDetectorError, match="Unknown face detector"):
        make_face_detector("mtcnn")
    with pytest.raises(FaceDetectorError, match="does not exist"):
        make_face_detector(tmp_path / "yunet.onnx")


def test_yunet_rejects_a_file_that_is_not_a_model(tmp_path):
    junk = tmp_path / "yunet.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(FaceDetectorError, match="cannot load"):
        YuNetFaceDetector(junk)
