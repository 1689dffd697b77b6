"""Turning a CNN face detector's raw outputs into boxes, scores and five landmarks (canvas pixels).

Each network's outputs arrive packed into one array per image (`face_networks` concatenates them in the
order they are declared), so ONNX Runtime and a one-output TensorRT engine hand the decoder the same thing:

- RetinaFace (anchor-based): N anchors x 16 = box deltas (4), class scores (2, softmax: background, face),
  landmark deltas (10). Anchors sit at the centre of every cell of the stride 8/16/32 grids, two square
  sizes per stride; a delta is scaled by 0.1 (centres, landmarks) or 0.2 (log sizes) of the anchor size.
- CenterFace (anchor-free, stride 4): 15 x h x w = heat map (1), log box size (2: height, width), centre
  offset (2: y, x), landmarks (10: y, x per point, relative to the box's top-left, in box sizes).

Only positions above the score threshold are decoded; overlapping boxes are merged by OpenCV's NMS.
Landmarks come in the networks' order: the eye on the image's left, the other eye, the nose, the mouth
corner on the image's left, the other corner.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

RETINAFACE_STRIDES = (8, 16, 32)
RETINAFACE_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
RETINAFACE_CENTER_VARIANCE = 0.1
RETINAFACE_SIZE_VARIANCE = 0.2
CENTERFACE_STRIDE = 4


@dataclass(frozen=True)
class Detections:
    """One image's faces in canvas pixels: boxes N x 4 (x1, y1, x2, y2), scores N, landmarks N x 5 x 2."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


@lru_cache(maxsize=16)
def retinaface_anchors(height: int, width: int) -> np.ndarray:
    """N x 4 anchors (centre x, centre y, size, size) in pixels, in the network's output order."""
    anchors = []
    for stride, sizes in zip(RETINAFACE_STRIDES, RETINAFACE_ANCHOR_SIZES):
        rows, cols = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        for_cell = [np.column_stack([centres, np.full((len(centres), 2), size)]) for size in sizes]
        anchors.append(np.stack(for_cell, axis=1).reshape(-1, 4))  # each cell's sizes next to each other
    anchors = np.concatenate(anchors).astype(np.float32)
    anchors.setflags(write=False)
    return anchors


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept (highest score first)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64).tolist()
    kept = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float64).tolist(), 0.0, iou_threshold)
    return np.asarray(kept, np.int64).reshape(-1)


def _suppressed(detections: Detections, iou_threshold: float) -> Detections:
    keep = non_maximum_suppression(detections.boxes, detections.scores, iou_threshold)
    return Detections(detections.boxes[keep], detections.scores[keep], detections.landmarks[keep])


def decode_retinaface(packed: np.ndarray, height: int, width: int, score_threshold: float,
                      iou_threshold: float = 0.4) -> Detections:
    """One image's packed RetinaFace output (N x 16) on a height x width canvas."""
    scores = packed[:, 5]
    chosen = np.flatnonzero(scores > score_threshold)
    if len(chosen) == 0:
        return Detections.empty()
    anchors = retinaface_anchors(height, width)[chosen]
    rows = packed[chosen]
    centre, size = anchors[:, :2], anchors[:, 2:]
    box_centre = centre + rows[:, 0:2] * RETINAFACE_CENTER_VARIANCE * size
    box_size = size * np.exp(rows[:, 2:4] * RETINAFACE_SIZE_VARIANCE)
    boxes = np.concatenate([box_centre - box_size / 2, box_centre + box_size / 2], axis=1)
    landmarks = centre[:, None, :] + rows[:, 6:16].reshape(-1, 5, 2) * RETINAFACE_CENTER_VARIANCE * size[:, None, :]
    return _suppressed(Detections(boxes, scores[chosen], landmarks), iou_threshold)


def decode_centerface(packed: np.ndarray, height: int, width: int, score_threshold: float,
                      iou_threshold: float = 0.3) -> Detections:
    """One image's packed CenterFace output (15 x height/4 x width/4) on a height x width canvas."""
    heat = packed[0]
    ys, xs = np.nonzero(heat > score_threshold)
    if len(ys) == 0:
        return Detections.empty()
    box_h = np.exp(packed[1, ys, xs]) * CENTERFACE_STRIDE
    box_w = np.exp(packed[2, ys, xs]) * CENTERFACE_STRIDE
    centre_y = (ys + packed[3, ys, xs] + 0.5) * CENTERFACE_STRIDE
    centre_x = (xs + packed[4, ys, xs] + 0.5) * CENTERFACE_STRIDE
    x1 = np.clip(centre_x - box_w / 2, 0, width)
    y1 = np.clip(centre_y - box_h / 2, 0, height)
    boxes = np.column_stack([x1, y1, np.minimum(x1 + box_w, width), np.minimum(y1 + box_h, height)])
    offsets = packed[5:15, ys, xs].T.reshape(-1, 5, 2)  # (y, x) per point, in box sizes from the top-left
    landmarks = np.stack([x1[:, None] + offsets[:, :, 1] * box_w[:, None],
                          y1[:, None] + offsets[:, :, 0] * box_h[:, None]], axis=2)
    return _suppressed(Detections(boxes.astype(np.float32), heat[ys, xs], landmarks.astype(np.float32)),
                       iou_threshold)
