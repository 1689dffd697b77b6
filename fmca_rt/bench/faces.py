"""Face detectors compared side by side: recall, false positives and time per 720p frame.

    python -m fmca_rt.bench.faces [--cnn retinaface --cnn centerface:480:0.3 ...] [--yunet FILE.onnx]
        [--repeats 3] [--markdown benchmarks/faces.md] [--json benchmarks/faces.json]

Scenes come from `face_scenes` (composite 1280 x 720 frames of the packaged photos; no-face photos). A
detection finds a face when its centre lies within 0.4 face heights of the face's centre and its size
(square root of the box area) is 0.5 to 2 face heights; each face and each detection is matched at most once,
closest first. Unmatched detections are false positives. Times are per `detect(frame)` call on the 720p
frames, the detectors taking turns on each frame (interleaved), so load from elsewhere hits all alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..errors import FMCAError
from ..faces import Face, FaceDetector, HaarFaceDetector, YuNetFaceDetector
from .face_scenes import PlacedFace, face_scenes, no_face_photos
from .machine import load_average, machine_info
from .outputs import measure_and_save

DEFAULT_CNNS = ("centerface", "centerface:640", "retinaface", "retinaface:640")
CENTRE_TOLERANCE = 0.4
SIZE_RANGE = (0.5, 2.0)


def match(faces: list[PlacedFace], detections: list[Face]) -> tuple[list[bool], int]:
    """(found flag per face, number of unmatched detections)."""
    pairs = []
    for i, face in enumerate(faces):
        for j, detection in enumerate(detections):
            x1, y1, x2, y2 = detection.box
            distance = np.hypot((x1 + x2) / 2 - face.centre[0], (y1 + y2) / 2 - face.centre[1])
            size = np.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0))
            if distance <= CENTRE_TOLERANCE * face.size and SIZE_RANGE[0] <= size / face.size <= SIZE_RANGE[1]:
                pairs.append((distance, i, j))
    found, used = [False] * len(faces), set()
    for _, i, j in sorted(pairs):
        if not found[i] and j not in used:
            found[i] = True
            used.add(j)
    return found, len(detections) - len(used)


@dataclass
class DetectorRun:
    name: str
    detector: FaceDetector
    seconds: list
    found: list  # (PlacedFace, bool)
    false_on_frames: int = 0
    false_on_photos: dict = None


def _recall(found, keep=lambda face: True) -> tuple[int, int]:
    chosen = [hit for face, hit in found if keep(face)]
    return sum(chosen), len(chosen)


def _is_acceptance_face(face: PlacedFace) -> bool:
    """The acceptance set: frontal (not covered) faces of 48 px or more, rotated up to 45 degrees."""
    return face.frontal and face.size >= 48 and abs(face.angle) <= 45


def run(detectors: dict[str, FaceDetector], repeats: int = 3) -> dict:
    scenes, photos = face_scenes(), no_face_photos()
    runs = {name: DetectorRun(name, detector, [], [], 0, {}) for name, detector in detectors.items()}
    order = list(runs.values())
    for repeat in range(repeats):
        for number, scene in enumerate(scenes):
            turn = (number + repeat) % len(order)
            for entry in order[turn:] + order[:turn]:
                start = time.perf_counter()
                detections = entry.detector.detect(scene.image)
                entry.seconds.append(time.perf_counter() - start)
                if repeat == 0:
                    found, false = match(scene.faces, detections)
                    entry.found += list(zip(scene.faces, found))
                    entry.false_on_frames += false
    for entry in order:
        entry.false_on_photos = {name: len(entry.detector.detect(image)) for name, image in photos.items()}
    conditions = list(dict.fromkeys(face.condition for scene in scenes for face in scene.faces))
    result = {"machine": {**machine_info(), "load_average": load_average()}, "repeats": repeats, "frames": len(scenes),
              "faces": sum(len(s.faces) for s in scenes), "no_face_photos": list(photos), "detectors": {}}
    for entry in order:
        acceptance = _recall(entry.found, _is_acceptance_face)
        overall = _recall(entry.found)
        result["detectors"][entry.name] = {
            "describe": _describe(entry.detector),
            "recall": overall[0] / overall[1], "found": overall[0],
            "acceptance_recall": acceptance[0] / acceptance[1], "acceptance_faces": acceptance[1],
            "per_condition": {c: _recall(entry.found, lambda f, c=c: f.condition == c) for c in conditions},
            "per_size": {s: _recall(entry.found, lambda f, s=s: f.size == s and f.frontal)
                         for s in sorted({f.size for f, _ in entry.found})},
            "false_per_frame": entry.false_on_frames / len(scenes),
            "false_per_no_face_photo": float(np.mean(list(entry.false_on_photos.values()))),
            "false_on_photos": entry.false_on_photos,
            "ms_per_frame_p50": 1000 * float(np.median(entry.seconds)),
            "ms_per_frame_p90": 1000 * float(np.percentile(entry.seconds, 90)),
        }
    return result


def _describe(detector) -> str:
    describe = getattr(detector, "describe", None)
    return describe() if describe else type(detector).__name__


def markdown(result: dict) -> str:
    detectors = result["detectors"]
    names = list(detectors)
    haar = detectors.get("haar")
    lines = [f"{result['frames']} composite 1280x720 frames with {result['faces']} faces; "
             f"{len(result['no_face_photos'])} no-face photos; times over {result['repeats']} passes, interleaved.",
             "", "| detector | recall, all faces | recall, frontal >= 48 px, up to +-45 deg | false per frame | "
             "false per no-face photo | ms per 720p frame p50 (p90) | vs Haar time |", "|---|---|---|---|---|---|---|"]
    for name in names:
        d = detectors[name]
        ratio = f"{d['ms_per_frame_p50'] / haar['ms_per_frame_p50']:.2f}" if haar else "-"
        lines.append(f"| {name}: {d['describe']} | {d['recall']:.3f} ({d['found']}/{result['faces']}) | "
                     f"{d['acceptance_recall']:.3f} of {d['acceptance_faces']} | {d['false_per_frame']:.2f} | "
                     f"{d['false_per_no_face_photo']:.3f} | {d['ms_per_frame_p50']:.1f} ({d['ms_per_frame_p90']:.1f}) | "
                     f"{ratio} |")
    conditions = list(detectors[names[0]]["per_condition"])
    lines += ["", "Recall per condition (found / faces):", "",
              "| detector | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
    for name in names:
        cells = [f"{hit}/{total}" for hit, total in detectors[name]["per_condition"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sizes = list(detectors[names[0]]["per_size"])
    lines += ["", "Recall per face height in pixels, all conditions but occluded (found / faces):", "",
              "| detector | " + " | ".join(map(str, sizes)) + " |", "|---" * (len(sizes) + 1) + "|"]
    for name in names:
        cells = [f"{hit}/{total}" for hit, total in detectors[name]["per_size"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    machine = result["machine"]
    lines += ["", f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, load average "
              f"{machine.get('load_average')}; {', '.join(f'{k} {v}' for k, v in machine.get('libraries', {}).items())}."]
    return "\n".join(lines) + "\n"


def _number(kind, text: str | None, spec: str):
    try:
        return None if text in (None, "") else kind(text)
    except ValueError:
        raise FMCAError(f"--cnn takes NAME[:SIZE[:THRESHOLD]], e.g. retinaface:640:0.5, not {spec!r}.") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fmca_rt.bench.faces", description=__doc__.split("\n\n")[0])
    parser.add_argument("--yunet", help="OpenCV YuNet model file (face_detection_yunet_2023mar.onnx) to compare too")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes over the frames (3)")
    parser.add_argument("--cnn", action="append", metavar="NAME[:SIZE[:THRESHOLD]]",
                        help="a CNN detector to compare, with its input size and score threshold (default: "
                             f"{' '.join(DEFAULT_CNNS)}); repeat for more")
    parser.add_argument("--markdown", help="write the tables here")
    parser.add_argument("--json", help="write every number here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        print("error: --repeats must be at least 1.", file=sys.stderr)
        return 2
    return measure_and_save(lambda: run(chosen_detectors(args), args.repeats), markdown, args.json, args.markdown)


def chosen_detectors(args) -> dict:
    from ..cnn_faces import CnnFaceDetector

    detectors = {"haar": HaarFaceDetector()}
    if args.yunet:
        detectors["yunet"] = YuNetFaceDetector(args.yunet)
    for spec in args.cnn or DEFAULT_CNNS:
        name, size, threshold = (spec.split(":") + [None, None])[:3]
        detectors[spec] = CnnFaceDetector.from_package(name, input_size=_number(int, size, spec),
                                                       score_threshold=_number(float, threshold, spec))
    return detectors


if __name__ == "__main__":
    sys.exit(main())
