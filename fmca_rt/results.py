"""What the Detector returns: per-face and per-image results, as objects, dicts, JSON and drawings.

JSON schema of one image (`ImageResult.to_dict()`; `fmca-rt predict --json` writes a list of them):

    {"source": str, "width": int, "height": int,
     "fake_prob": float | null,          # the highest over faces; null when no face was found
     "label": "real" | "fake" | "uncertain" | "no face" | "error",   # the label of the face with the highest P(fake)
     "faces": [{"box": [x1, y1, x2, y2], "score": float, "fake_prob": float | null, "label": str,
                "landmarks": [[x, y] x 5] (CNN face detectors: eyes, nose tip, mouth corners),
                "track_id": int, "fresh": bool (video only: classified on this frame, or the track's
                                                   last score carried)}],
                # fake_prob null, label "error": the model's output for that face was not finite (NaN/inf
                # logits), so it has no verdict
     "error": str | null,                # why the image could not be processed
     "operating_point": {"name": str, "threshold": float} | null}   # how labels were decided ("fpr@1%", ...)

"uncertain" comes only with the abstain band (threshold="abstain"), whose operating point also has
"real_threshold": P(fake) at or above "threshold" is fake, at or below "real_threshold" real, between uncertain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .abstain import UNCERTAIN, AbstainBand
from .faces import Face
from .operating_points import OperatingPoint

if TYPE_CHECKING:
    from .detector import Detector
    from .explain import Explanation

NO_FACE = "no face"
ERROR = "error"
_COLORS = {"real": (60, 180, 60), "fake": (40, 40, 220), UNCERTAIN: (0, 165, 255)}  # BGR; uncertain is amber


@dataclass
class FaceResult:
    face: Face
    fake_prob: float | None  # None when the model's output for this face was not finite (label "error")
    label: str
    track_id: int | None = None
    fresh: bool | None = None  # video: whether the face was classified on this frame or carries its track's score

    @property
    def scored(self) -> bool:
        return self.fake_prob is not None

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.face.box

    @property
    def score(self) -> float:
        return self.face.score

    def to_dict(self) -> dict:
        values = {**self.face.to_dict(), "fake_prob": None if self.fake_prob is None else round(float(self.fake_prob), 6),
                  "label": self.label}
        if self.track_id is not None:
            values["track_id"] = self.track_id
        if self.fresh is not None:
            values["fresh"] = self.fresh
        return values


@dataclass
class ImageResult:
    source: str
    width: int = 0
    height: int = 0
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)  # the BGR image, kept for plot() and explain()
    operating_point: OperatingPoint | AbstainBand | None = None  # the threshold(s) that decided the labels
    detector: Detector | None = field(default=None, repr=False, compare=False)  # the one that made it, for explain()

    @property
    def fake_prob(self) -> float | None:
        """The highest P(fake) over the faces; None without a face, or when one of them could not be scored."""
        if self.error is not None or not all(f.scored for f in self.faces):
            return None
        return max((f.fake_prob for f in self.faces), default=None)

    @property
    def label(self) -> str:
        if self.error is not None or not all(f.scored for f in self.faces):
            return ERROR
        if not self.faces:
            return NO_FACE
        return max(self.faces, key=lambda f: f.fake_prob).label

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        fake_prob = self.fake_prob
        return {"source": self.source, "width": self.width, "height": self.height,
                "fake_prob": None if fake_prob is None else round(float(fake_prob), 6), "label": self.label,
                "faces": [f.to_dict() for f in self.faces], "error": self.error,
                "operating_point": None if self.operating_point is None else self.operating_point.summary_dict()}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def explain(self, method: str = "occlusion", **options) -> list[Explanation]:
        """Why each face got its P(fake): one heat-map Explanation per face; see Detector.explain."""
        if self.detector is None:
            from .errors import ExplainError

            raise ExplainError(f"The result for {self.source} was not made by a Detector; use detector.explain(image).")
        return self.detector.explain(self, method, **options)

    def plot(self, image: np.ndarray | None = None) -> np.ndarray:
        """A copy of the image (BGR) with each face's box, label and P(fake) drawn on it."""
        base = self.image if image is None else image
        if base is None:
            raise ValueError("This result keeps no image; pass the BGR image to plot(image).")
        return draw_faces(base.copy(), self.faces)


def draw_faces(canvas: np.ndarray, faces: list[FaceResult]) -> np.ndarray:
    """Draw boxes and 'label p' captions onto a BGR image in place; returns it."""
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1200)
    for face in faces:
        x1, y1, x2, y2 = face.box
        color = _COLORS.get(face.label, (200, 200, 200))
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), color, thickness)
        caption = face.label if face.fake_prob is None else f"{face.label} {face.fake_prob:.2f}"
        if face.track_id is not None:
            caption = f"#{face.track_id} {caption}"
        (w, h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(y1 - h - baseline - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + w + 2, top + h + baseline + 2), color, -1)
        cv2.putText(canvas, caption, (x1 + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas
