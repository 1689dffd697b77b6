"""The Detector's face detection, safe from several threads and against boxes that do not fit the image.

OpenCV's detectors (the Haar cascade, YuNet) keep per-call state inside the object and give wrong boxes or
crash when two threads share one, so each thread gets its own, made from the same specification. A plug-in
object (anything with `detect(bgr)`) is the user's and cannot be copied: calls to it are serialized.

A YuNet model file is checked before OpenCV loads it (`check_yunet_model`): OpenCV's DNN importer crashes
the whole process on some graphs that are not YuNet.

Boxes are checked before anything is cropped: a box partly outside the image is clipped to it; a box with
no pixel inside the image (or not four finite numbers) and a detector that raises make that image's
result an error (FaceDetectorError), instead of a wrong crop or a whole batch lost.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .errors import FaceDetectorError
from .faces import Face, FaceDetector, make_face_detector
from .onnx_graph import NotOnnx, read_graph_io

# What OpenCV's FaceDetectorYN (4.8+) reads: one image input, and per stride 8/16/32 these outputs
YUNET_OUTPUTS = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32))


def check_yunet_model(model_path) -> None:
    """FaceDetectorError unless the file is an ONNX graph shaped like YuNet (checked without OpenCV)."""
    try:
        graph = read_graph_io(model_path)
    except (NotOnnx, OSError):
        raise FaceDetectorError(f"OpenCV cannot load {model_path} as a YuNet face detector: it is not an ONNX model "
                                "(use face_detection_yunet_2023mar.onnx from the OpenCV model zoo).") from None
    missing = [name for name in YUNET_OUTPUTS if name not in graph.outputs]
    if missing or len(graph.inputs) != 1 or next(iter(graph.inputs.values())) not in (4, None):
        raise FaceDetectorError(
            f"{model_path} is not OpenCV's YuNet face detector (inputs {', '.join(graph.inputs) or 'none'}; "
            f"outputs {', '.join(list(graph.outputs)[:6]) or 'none'}{'...' if len(graph.outputs) > 6 else ''}; "
            "YuNet has one image input and cls/obj/bbox/kps outputs at strides 8, 16 and 32): use "
            "face_detection_yunet_2023mar.onnx from the OpenCV model zoo.")


def clipped_faces(faces, image_shape: tuple[int, ...], source: str = "the face detector") -> list[Face]:
    """Faces with integer boxes clipped to the image; FaceDetectorError for a box that misses it."""
    height, width = image_shape[:2]
    checked = []
    for face in faces:
        try:
            x1, y1, x2, y2 = (float(v) for v in face.box)
            score = float(face.score)
        except (AttributeError, TypeError, ValueError):
            raise FaceDetectorError(f"{source} returned {face!r}, not a Face with a box (x1, y1, x2, y2) and "
                                    "a score.") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise FaceDetectorError(f"{source} returned a box with a non-finite coordinate: {face.box}.")
        box = (max(int(round(x1)), 0), max(int(round(y1)), 0),
               min(int(round(x2)), width), min(int(round(y2)), height))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise FaceDetectorError(f"{source} returned the box {tuple(face.box)}, which has no pixel inside the "
                                    f"{width} x {height} image (boxes are x1, y1, x2, y2 in pixels).")
        checked.append(face if box == face.box and isinstance(face, Face) else Face(box, score))
    return checked


class ThreadSafeFaces:
    """`detect(bgr)` and `detect_batch(images)` from any number of threads: a detector per thread (made from
    the same specification and device), or one plug-in behind a lock."""

    def __init__(self, faces: str | FaceDetector | None, device: str | None = None):
        self._spec, self._device = faces, device
        self._plugin = faces if isinstance(faces, FaceDetector) and not isinstance(faces, str) else None
        self._lock = threading.Lock()
        self._local = threading.local()
        self.for_this_thread()  # an unknown name or a missing model file fails now, in the caller's thread

    def for_this_thread(self) -> FaceDetector:
        if self._plugin is not None:
            return self._plugin
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = make_face_detector(self._spec, self._device)
        return detector

    def detect(self, bgr: np.ndarray) -> list[Face]:
        detector = self.for_this_thread()
        faces = self._call(detector, detector.detect, bgr)
        return clipped_faces(faces, bgr.shape, f"The face detector {type(detector).__name__}")

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face] | FaceDetectorError]:
        """Each image's faces, or the FaceDetectorError that image gave; one batched call where the detector
        has `detect_batch` (image by image after a batched call fails, to tell which image failed)."""
        detector = self.for_this_thread()
        batched = getattr(detector, "detect_batch", None)
        if batched is not None and images:
            try:
                found = self._call(detector, batched, images)
            except FaceDetectorError:
                pass
            else:
                return [_or_error(lambda: clipped_faces(faces, image.shape,
                                                        f"The face detector {type(detector).__name__}"))
                        for faces, image in zip(found, images)]
        return [_or_error(lambda: self.detect(image)) for image in images]

    def _call(self, detector, method, argument):
        try:
            if self._plugin is None:
                return method(argument)
            with self._lock:
                return method(argument)
        except FaceDetectorError:
            raise
        except Exception as error:  # a plug-in's own failure becomes this image's error, not the batch's
            raise FaceDetectorError(f"The face detector {type(detector).__name__} failed: {type(error).__name__}: "
                                    f"{error}") from None


def _or_error(detect) -> list[Face] | FaceDetectorError:
    try:
        return detect()
    except FaceDetectorError as error:
        return error
