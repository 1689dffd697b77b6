"""An IoU tracker that follows faces across frames and smooths each face's P(fake) over time.

Each frame's boxes are matched greedily to live tracks, highest overlap first; a box that overlaps no
track by `iou_threshold` starts a new one, and a track unseen for more than `max_missed` frames in a
row ends. A track's smoothed score is an exponential moving average: s <- smoothing * s + (1 - smoothing) * p,
so one noisy frame does not flip the label shown on a face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Track:
    track_id: int
    box: tuple[int, int, int, int]
    smoothed: float | None  # None until the track's first score
    missed: int = 0
    hits: int = 1


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in a (N x 4) with every box in b (M x 4), x1 y1 x2 y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class IoUTracker:
    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 15, smoothing: float = 0.6):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}.")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: list[tuple[int, int, int, int]], probs: list[float]) -> list[Track]:
        """Assign this frame's boxes to tracks and smooth their scores; returns the track of each box."""
        tracks = self.assign(boxes)
        for track, prob in zip(tracks, probs):
            self.smooth(track, prob)
        return tracks

    def smooth(self, track: Track, prob: float) -> None:
        track.smoothed = float(prob) if track.smoothed is None else \
            self.smoothing * track.smoothed + (1 - self.smoothing) * prob

    def assign(self, boxes: list[tuple[int, int, int, int]]) -> list[Track]:
        """Match this frame's boxes to tracks (new tracks for the rest); returns the track of each box."""
        overlaps = iou_matrix(np.asarray([t.box for t in self.tracks], float).reshape(-1, 4),
                              np.asarray(boxes, float).reshape(-1, 4))
        assigned: list[Track | None] = [None] * len(boxes)
        used_tracks: set[int] = set()
        for flat in np.argsort(-overlaps, axis=None):
            t, b = np.unravel_index(flat, overlaps.shape)
            if overlaps[t, b] < self.iou_threshold:
                break
            if t in used_tracks or assigned[b] is not None:
                continue
            track = self.tracks[t]
            track.box, track.missed, track.hits = boxes[b], 0, track.hits + 1
            assigned[b] = track
            used_tracks.add(int(t))
        for t, track in enumerate(self.tracks):
            if t not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for b, track in enumerate(assigned):
            if track is None:
                assigned[b] = Track(self._next_id, boxes[b], None)
                self._next_id += 1
                self.tracks.append(assigned[b])
        return assigned
