"""A CNN face detector (RetinaFace or CenterFace) on letterboxed canvases, batched across images.

    detector = CnnFaceDetector.from_package("centerface")          # ONNX Runtime, weights from the package
    detector = CnnFaceDetector.from_engine("fmca-faces.engine")    # TensorRT FP16 on an NVIDIA GPU
    faces = detector.detect(bgr)                                   # [Face(box, score, landmarks), ...]
    per_image = detector.detect_batch([bgr1, bgr2, ...])           # one backend call per canvas shape

Each image is scaled so its long side is `input_size` (the network's default: 480 px for CenterFace, 768 px
for RetinaFace, chosen on the comparison in benchmarks/RESULTS.md; never enlarged), placed at the
top-left of a canvas whose sides are multiples of the network's stride (an engine's fixed square canvas
on TensorRT) and padded with the network's mean colour; boxes and landmarks are mapped back to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .backends.base import Backend
from .errors import FaceDetectorError
from .face_decode import Detections
from .face_networks import DEFAULT_NETWORK, FaceNetwork, face_network
from .faces import Face

@dataclass(frozen=True)
class Letterbox:
    """Where an image sits on its canvas: canvas = image * scale (top-left aligned)."""

    scale: float
    resized: tuple[int, int]  # height, width of the scaled image on the canvas
    canvas: tuple[int, int]  # height, width of the canvas

    @classmethod
    def fit(cls, shape: tuple[int, ...], input_size: int, multiple: int, fixed_canvas: int | None = None) -> "Letterbox":
        height, width = shape[:2]
        longest = fixed_canvas or input_size
        scale = min(longest / max(height, width), 1.0)
        resized = (max(int(round(height * scale)), 1), max(int(round(width * scale)), 1))
        if fixed_canvas is not None:
            return cls(scale, resized, (fixed_canvas, fixed_canvas))
        canvas = tuple(-(-side // multiple) * multiple for side in resized)
        return cls(scale, resized, canvas)

    def place(self, bgr: np.ndarray, fill: tuple[float, float, float]) -> np.ndarray:
        canvas = np.empty((*self.canvas, 3), np.uint8)
        canvas[:] = np.clip(np.round(fill), 0, 255).astype(np.uint8)
        height, width = self.resized
        if (height, width) == bgr.shape[:2]:
            canvas[:height, :width] = bgr
        else:
            canvas[:height, :width] = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)
        return canvas

    def to_faces(self, detections: Detections, image_shape: tuple[int, ...]) -> list[Face]:
        """Canvas detections -> Faces in image pixels (boxes clipped to the image), most confident first."""
        height, width = image_shape[:2]
        faces = []
        for box, score, points in zip(detections.boxes / self.scale, detections.scores,
                                      detections.landmarks / self.scale):
            x1, y1 = int(round(np.clip(box[0], 0, width))), int(round(np.clip(box[1], 0, height)))
            x2, y2 = int(round(np.clip(box[2], 0, width))), int(round(np.clip(box[3], 0, height)))
            if x2 > x1 and y2 > y1:
                landmarks = tuple((round(float(x), 2), round(float(y), 2)) for x, y in points)
                faces.append(Face((x1, y1, x2, y2), float(score), landmarks))
        return sorted(faces, key=lambda face: -face.score)


def canvas_blob(network: FaceNetwork, images: list[np.ndarray], boxes: list[Letterbox]) -> np.ndarray:
    """B x 3 x H x W float32 canvases in the network's channel order, its mean subtracted (padding -> 0)."""
    fill = network.mean if network.channels == "bgr" else network.mean[::-1]
    canvases = [box.place(image, fill) for image, box in zip(images, boxes)]
    return cv2.dnn.blobFromImages(canvases, 1.0, None, network.mean, network.channels == "rgb", False)


def square_canvas_blob(network: FaceNetwork, images: list[np.ndarray], canvas: int) -> np.ndarray:
    """The images letterboxed onto canvas x canvas squares (what a face engine takes)."""
    return canvas_blob(network, images, [Letterbox.fit(image.shape, canvas, network.multiple, canvas)
                                         for image in images])


class CnnFaceDetector:
    """Runs a face network through a backend (`backends.face_network`) and decodes its outputs."""

    def __init__(self, backend: Backend, input_size: int | None = None, score_threshold: float | None = None,
                 iou_threshold: float | None = None, max_batch: int = 8):
        if input_size is not None and input_size < 32:
            raise FaceDetectorError(f"The face detector's input size must be at least 32 pixels, not {input_size}.")
        self.backend = backend.activate()
        self.network: FaceNetwork = backend.network
        self.input_size = input_size or self.network.input_size
        self.score_threshold = self.network.score_threshold if score_threshold is None else score_threshold
        self.iou_threshold = iou_threshold
        self.max_batch = max_batch

    @classmethod
    def from_package(cls, name: str = DEFAULT_NETWORK, device: str | None = None, **options) -> "CnnFaceDetector":
        from .backends.face_network import FaceOnnxRuntimeBackend

        return cls(FaceOnnxRuntimeBackend(face_network(name), device), **options)

    @classmethod
    def from_engine(cls, engine_path, device: str | None = None, **options) -> "CnnFaceDetector":
        from .backends.face_network import FaceTensorRTBackend

        return cls(FaceTensorRTBackend(engine_path, device), **options)

    def describe(self) -> str:
        return f"{self.network.description} ({self.backend.describe()}, {self.input_size} px)"

    def letterbox(self, shape: tuple[int, ...]) -> Letterbox:
        return Letterbox.fit(shape, self.input_size, self.network.multiple, self.backend.fixed_canvas)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        return self.detect_batch([bgr])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces in each BGR uint8 image; images with the same canvas share backend calls."""
        boxes = [self.letterbox(image.shape) for image in images]
        results: list[list[Face] | None] = [None] * len(images)
        for canvas in dict.fromkeys(box.canvas for box in boxes):
            members = [i for i, box in enumerate(boxes) if box.canvas == canvas]
            for start in range(0, len(members), self.max_batch):
                chunk = members[start:start + self.max_batch]
                packed = self.backend.infer(canvas_blob(self.network, [images[i] for i in chunk],
                                                        [boxes[i] for i in chunk]))
                for i, output in zip(chunk, packed):
                    results[i] = boxes[i].to_faces(self._decode(output, canvas), images[i].shape)
        return results

    def _decode(self, packed: np.ndarray, canvas: tuple[int, int]) -> Detections:
        options = {} if self.iou_threshold is None else {"iou_threshold": self.iou_threshold}
        return self.network.decode(packed, canvas[0], canvas[1], self.score_threshold, **options)

    def close(self) -> None:
        self.backend.deactivate()
