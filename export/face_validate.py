"""After a face detector engine is built: does it find the faces ONNX Runtime float32 finds, where it finds them?

The shipped photos (and their mirror images), letterboxed onto the engine's canvas, go through the engine and
through ONNX Runtime on the ONNX it was built from; both outputs are decoded at the network's score threshold.
Every reference face must have an engine face with box IoU >= 0.9 and landmarks within 5% of the box side,
and the engine must find no extra face. The report's lines go to the build log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmca_rt.backends.face_network import PACKED_OUTPUT
from fmca_rt.cnn_faces import square_canvas_blob
from fmca_rt.face_decode import Detections
from fmca_rt.face_networks import face_network
from fmca_rt.metadata import ModelMetadata
from fmca_rt.video.tracker import iou_matrix

from .face_samples import shipped_photos

MIN_IOU = 0.9
MAX_LANDMARK_ERROR = 0.05  # of the reference box's longer side


@dataclass(frozen=True)
class FaceEngineReport:
    faces: int  # found by the reference
    matched: int
    extra: int  # engine faces with no reference face
    min_iou: float
    max_landmark_error: float  # in box sides
    max_score_delta: float

    @property
    def passed(self) -> bool:
        return self.matched == self.faces and self.extra == 0 and self.faces > 0

    def lines(self) -> list[str]:
        return [f"faces: {self.matched} of {self.faces} matched, {self.extra} extra; min box IoU {self.min_iou:.3f}, "
                f"max landmark error {self.max_landmark_error:.3f} box sides, max |score delta| "
                f"{self.max_score_delta:.2e}", "PASS" if self.passed else "FAIL"]

    def measured(self) -> dict:
        return {"faces": self.faces, "matched": self.matched, "extra": self.extra, "min_iou": self.min_iou,
                "max_landmark_error": self.max_landmark_error, "max_score_delta": self.max_score_delta}


def compare_detections(pairs: list[tuple[Detections, Detections]]) -> FaceEngineReport:
    """(reference, candidate) detections per image -> the report."""
    faces = matched = extra = 0
    ious, landmark_errors, score_deltas = [1.0], [0.0], [0.0]
    for reference, candidate in pairs:
        faces += len(reference)
        overlaps = iou_matrix(reference.boxes.astype(float), candidate.boxes.astype(float))
        used = set()
        for r in range(len(reference)):
            order = [c for c in np.argsort(-overlaps[r]) if c not in used and overlaps[r, c] >= MIN_IOU] \
                if overlaps.shape[1] else []
            if not order:
                continue
            c = order[0]
            used.add(c)
            side = max(np.ptp(reference.boxes[r, [0, 2]]), np.ptp(reference.boxes[r, [1, 3]]), 1.0)
            error = float(np.abs(reference.landmarks[r] - candidate.landmarks[c]).max() / side)
            ious.append(float(overlaps[r, c]))
            landmark_errors.append(error)
            score_deltas.append(abs(float(reference.scores[r] - candidate.scores[c])))
            matched += error <= MAX_LANDMARK_ERROR
        extra += len(candidate) - len(used)
    return FaceEngineReport(faces, matched, extra, min(ious), max(landmark_errors), max(score_deltas))


def validate_face_engine(engine_infer, onnx_path: Path, metadata: ModelMetadata, batch: int) -> FaceEngineReport:
    import onnxruntime as ort

    network = face_network(metadata.config["network"])
    canvas = metadata.image_size
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    blob = square_canvas_blob(network, shipped_photos(), canvas)
    pairs = []
    for start in range(0, len(blob), batch):
        chunk = blob[start:start + batch]
        reference = session.run([PACKED_OUTPUT], {metadata.input_name: chunk})[0]
        candidate = engine_infer(chunk)
        pairs += [(network.decode(r, canvas, canvas, network.score_threshold),
                   network.decode(c, canvas, canvas, network.score_threshold)) for r, c in zip(reference, candidate)]
    return compare_detections(pairs)
