"""Per-track inference on video: classify a tracked face again only when something may have changed.

Like a DeepStream secondary classifier, a face the tracker follows is not classified on every frame. It is
classified (a "fresh" score) when its track is new, when `every` frames have passed since its last fresh
score, when its box has grown or shrunk by more than `grow` (relative side length) or its centre moved by
more than `move` box sides since then, when what is inside its box looks different (its 16 x 16 grey
thumbnail differs from the one at its last fresh score by more than `look` on average, pixels scaled to
[0, 1]: a cut to another scene or person under the same box, a light switched on), or when its smoothed
P(fake) (an exponential moving average of its fresh scores) lies within `margin` of the decision threshold.
Otherwise it carries its last fresh score.
`every=1` classifies every face on every frame. A score that is not finite (an overflowing engine) is that
face's error on that frame, never carried: the track is classified again on its next frame.

Decisions depend only on the frames before, never on how frames were batched: when a decision needs a score
still waiting in the current batch (the near-threshold rule), the waiting crops are classified first.
Each track's verdict is the mean of its per-frame scores (fresh or carried).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import FMCAError
from ..faces import Face
from ..results import ERROR, FaceResult


@dataclass(frozen=True)
class ClassifyPolicy:
    every: int = 5
    grow: float = 0.2
    move: float = 0.5
    margin: float = 0.1
    look: float = 0.1
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        if self.every < 1:
            raise FMCAError(f"classify_every must be at least 1 frame, not {self.every}.")
        if min(self.grow, self.move, self.margin, self.look) < 0 or not 0 <= self.smoothing < 1:
            raise FMCAError("The per-track thresholds must not be negative and smoothing must lie in [0, 1).")


@dataclass
class Score:
    """One classification of a track's face; `prob` arrives when its batch has been classified."""

    frame: int
    box: tuple[int, int, int, int]
    look: np.ndarray  # the box's grey thumbnail
    prob: float | None = None


@dataclass
class TrackScores:
    track_id: int
    first_frame: int
    last_frame: int = -1
    latest: Score | None = None  # the last fresh score asked for
    smoothed: float | None = None  # moving average of the fresh scores received
    frames: int = 0  # frames the track was scored in (seen, with a finite score)
    score_sum: float = 0.0  # of its per-frame scores (a running sum: live streams run for days)
    fresh: int = 0

    def receive(self, score: Score, prob: float, smoothing: float) -> None:
        score.prob = prob
        if math.isfinite(prob):
            self.smoothed = prob if self.smoothed is None else smoothing * self.smoothed + (1 - smoothing) * prob


def _changed(before: tuple[int, int, int, int], now: tuple[int, int, int, int], grow: float, move: float) -> bool:
    side_before = max(before[2] - before[0], before[3] - before[1], 1)
    side_now = max(now[2] - now[0], now[3] - now[1], 1)
    shift = np.hypot((now[0] + now[2] - before[0] - before[2]) / 2, (now[1] + now[3] - before[1] - before[3]) / 2)
    return abs(side_now / side_before - 1) > grow or shift > move * side_before


THUMBNAIL = 16


def thumbnail(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box's content as a THUMBNAIL x THUMBNAIL grey image in [0, 1] (what `look` compares)."""
    x1, y1, x2, y2 = box
    patch = image[max(y1, 0):max(y2, y1 + 1), max(x1, 0):max(x2, x1 + 1)]
    if patch.size == 0:
        return np.zeros((THUMBNAIL, THUMBNAIL), np.float32)
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    return cv2.resize(grey, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def wants_fresh(policy: ClassifyPolicy, track: TrackScores, box, look: np.ndarray, frame: int,
                threshold: float) -> bool | None:
    """Whether this face needs a fresh score; None when that depends on a score not classified yet."""
    latest = track.latest
    if (latest is None or frame - latest.frame >= policy.every or _changed(latest.box, box, policy.grow, policy.move)
            or float(np.abs(look - latest.look).mean()) > policy.look):
        return True
    if latest.prob is None:
        return None
    if not math.isfinite(latest.prob):
        return True
    return abs(track.smoothed - threshold) < policy.margin


class PerTrackScoring:
    """Turns frames with their faces into FaceResults, classifying only the faces the policy asks for."""

    def __init__(self, policy: ClassifyPolicy | None = None):
        self.policy = policy or ClassifyPolicy()
        self.tracks: dict[int, TrackScores] = {}
        self.faces_seen = 0
        self.faces_classified = 0

    def score(self, detector, tracker, frames: list[tuple[int, np.ndarray, list[Face]]], latency
              ) -> dict[int, tuple[list[FaceResult], list[float]]]:
        """frames: (index, BGR image, faces) in order -> index -> (face results, smoothed P(fake) per face);
        the tracker's time is recorded in `latency` as "track" (classification as the detector's own)."""
        waiting: list[tuple[np.ndarray, TrackScores, Score]] = []

        def classify_waiting() -> None:
            if waiting:
                probs = detector.classify_crops([crop for crop, _, _ in waiting]).tolist()
                for (_, track, score), prob in zip(waiting, probs):
                    track.receive(score, prob, self.policy.smoothing)
                waiting.clear()

        rows = []
        for index, image, faces in frames:
            with latency.measure("track"):
                assigned = tracker.assign([face.box for face in faces])
            for face, track in zip(faces, assigned):
                scores = self.tracks.setdefault(track.track_id, TrackScores(track.track_id, index))
                look = thumbnail(image, face.box)
                fresh = wants_fresh(self.policy, scores, face.box, look, index, detector.threshold)
                if fresh is None:
                    classify_waiting()
                    fresh = wants_fresh(self.policy, scores, face.box, look, index, detector.threshold)
                if fresh:
                    scores.latest = Score(index, face.box, look)
                    waiting.append((detector.crop_faces(image, [face])[0], scores, scores.latest))
                rows.append((index, face, track, scores, scores.latest, fresh))
        classify_waiting()

        results: dict[int, tuple[list[FaceResult], list[float]]] = {index: ([], []) for index, _, _ in frames}
        for index, face, track, scores, score, fresh in rows:
            scores.last_frame, scores.fresh = index, scores.fresh + bool(fresh)
            face_results, smoothed = results[index]
            if not math.isfinite(score.prob):
                face_results.append(FaceResult(face, None, ERROR, track.track_id, bool(fresh)))
                smoothed.append(None)
                continue
            tracker.smooth(track, score.prob)
            scores.frames, scores.score_sum = scores.frames + 1, scores.score_sum + score.prob
            face_results.append(FaceResult(face, score.prob, detector.label_for(score.prob), track.track_id, bool(fresh)))
            smoothed.append(track.smoothed)
        self.faces_seen += len(rows)
        self.faces_classified += sum(bool(row[-1]) for row in rows)
        return results

    def summary(self, label_for) -> dict:
        """The policy, how many faces were classified, and each track's verdict."""
        tracks = []
        for track in self.tracks.values():
            if not track.frames:
                continue
            prob = track.score_sum / track.frames
            tracks.append({"track_id": track.track_id, "first_frame": track.first_frame,
                           "last_frame": track.last_frame, "frames": track.frames,
                           "fresh_scores": track.fresh, "fake_prob": round(prob, 6), "label": label_for(prob)})
        policy = self.policy
        return {"classify": {"every": policy.every, "grow": policy.grow, "move": policy.move, "look": policy.look,
                             "margin": policy.margin,
                             "faces": self.faces_seen, "classified": self.faces_classified},
                "tracks": tracks}
