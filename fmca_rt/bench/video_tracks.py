"""Per-track inference measured: a 720p video with three moving faces, today's pipeline against the new one.

    python -m fmca_rt.bench.video_tracks --model fmca.onnx [--backend cpu] [--threshold T] [--frames 60]
        [--rounds 2] [--markdown OUT.md] [--json OUT.json]

The video is made from the packaged photos (`face_scenes`): three faces (upright, rotated 20 degrees,
mirrored and smaller) gliding across a 1280 x 720 background. Three pipelines run it end to end (capture,
detection, crops, classification, tracking), taking turns round by round so that load from elsewhere hits
all alike: today's (OpenCV's Haar cascade, every face classified on every frame), the CNN detector with
every face classified on every frame, and the CNN detector with the per-track policy's defaults. Reported:
frames per second, the video verdict (mean P(fake) over frames with a face) and its difference from the
others, how many faces were found and classified.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError
from ..video.track_scores import ClassifyPolicy
from .face_scenes import FRAME_SIZE, face_photos, paste_face, shipped_photo, NO_FACE_PHOTOS
from .machine import load_average, machine_info
from .outputs import measure_and_save

# name -> (faces argument, per-track policy)
PIPELINES = {
    "today: Haar, every face every frame": ("haar", ClassifyPolicy(every=1)),
    "CNN detector, every face every frame": ("auto", ClassifyPolicy(every=1)),
    "CNN detector, per-track policy (default)": ("auto", ClassifyPolicy()),
}


def moving_faces_video(path: Path, frames: int, fps: float = 25.0) -> Path:
    """Three faces moving across a 720p background: Grace Hopper upright (180 px, left to right), the
    astronaut rotated 20 degrees (130 px, right to left, sinking), Grace Hopper mirrored (90 px, rising)."""
    photos = face_photos()
    grace, grace_box = photos["grace_hopper"]
    astronaut, astronaut_box = photos["astronaut"]
    mirrored = np.ascontiguousarray(grace[:, ::-1])
    mirrored_box = (grace.shape[1] - grace_box[2], grace_box[1], grace.shape[1] - grace_box[0], grace_box[3])
    width, height = FRAME_SIZE
    background = cv2.resize(shipped_photo(*NO_FACE_PHOTOS["coffee.png"]), (width, height), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OutputError(f"OpenCV cannot write the test video {path}.")
    for i in range(frames):
        t = i / max(frames - 1, 1)
        frame = background.copy()
        paste_face(frame, grace, grace_box, 180, 0, (220 + 500 * t, 230))
        paste_face(frame, astronaut, astronaut_box, 130, 20, (1060 - 400 * t, 200 + 250 * t))
        paste_face(frame, mirrored, mirrored_box, 90, -10, (300 + 200 * t, 600 - 120 * t))
        writer.write(frame)
    writer.release()
    return path


def run(model: str, backend: str, frames: int, rounds: int, threshold: float | str | None = None) -> dict:
    from ..detector import Detector

    with tempfile.TemporaryDirectory(prefix="fmca-video-tracks-") as folder:
        video = moving_faces_video(Path(folder) / "three-faces.avi", frames)
        detectors = {name: Detector(model, backend=backend, faces=faces, threshold=threshold)
                     for name, (faces, _) in PIPELINES.items()}
        load_before = load_average()
        summaries: dict[str, list[dict]] = {name: [] for name in PIPELINES}
        for round_number in range(rounds):
            names = list(PIPELINES)
            names = names[round_number % len(names):] + names[:round_number % len(names)]
            for name in names:
                summaries[name].append(detectors[name].stream(video, classify=PIPELINES[name][1]).run())
        threshold_used = next(iter(detectors.values())).threshold
        for detector in detectors.values():
            detector.close()
    result = {"machine": {**machine_info(), "load_average_before": load_before, "load_average_after": load_average()},
              "model": model, "backend": backend, "threshold": threshold_used, "frames": frames,
              "rounds": rounds, "pipelines": {}}
    today = every_frame = None
    for name, runs in summaries.items():
        fps = [summary["fps"] for summary in runs]
        last = runs[-1]
        row = {"fps_median": float(np.median(fps)), "fps": fps, "fake_prob": last["fake_prob"],
               "label": last["label"], "frames_with_faces": last["frames_with_faces"],
               "faces": last["classify"]["faces"], "classified": last["classify"]["classified"],
               "tracks": len(last["tracks"]), "same_verdict_every_round": len({r["fake_prob"] for r in runs}) == 1}
        today = today or row
        every_frame = every_frame or (row if today is not row else None)
        row["fps_vs_today"] = row["fps_median"] / today["fps_median"]
        row["delta_fake_prob_vs_today"] = _delta(row, today)
        row["delta_fake_prob_vs_cnn_every_frame"] = _delta(row, every_frame) if every_frame else None
        result["pipelines"][name] = row
    return result


def _delta(row: dict, other: dict) -> float | None:
    return None if None in (row["fake_prob"], other["fake_prob"]) else abs(row["fake_prob"] - other["fake_prob"])


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    lines = [f"{result['frames']} frames of 1280x720 with three moving faces; model {result['model']} "
             f"(backend {result['backend']}, threshold {result['threshold']:g}); {result['rounds']} rounds, "
             "pipelines taking turns.", "",
             "| pipeline | frames/s (median) | vs today | video P(fake) | abs delta vs today | abs delta vs CNN every "
             "frame | frames with a face | faces found | faces classified | tracks |", "|---" * 10 + "|"]
    for name, row in result["pipelines"].items():
        lines.append(f"| {name} | {row['fps_median']:.2f} | {row['fps_vs_today']:.2f}x | {_cell(row['fake_prob'])} | "
                     f"{_cell(row['delta_fake_prob_vs_today'])} | {_cell(row['delta_fake_prob_vs_cnn_every_frame'])} | "
                     f"{row['frames_with_faces']} | {row['faces']} | {row['classified']} | {row['tracks']} |")
    machine = result["machine"]
    lines += ["", f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores; load average before "
              f"{machine.get('load_average_before')}, after {machine.get('load_average_after')}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmca_rt.bench.video_tracks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .onnx, .pth or .engine classifier")
    parser.add_argument("--backend", default="auto", help="the Detector's backend (auto, cpu, onnxruntime, ...)")
    parser.add_argument("--threshold", type=float, help="the Detector's P(fake) threshold (default: the model's)")
    parser.add_argument("--frames", type=int, default=60, help="length of the test video (60)")
    parser.add_argument("--rounds", type=int, default=2, help="passes of each pipeline over the video (2)")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)
    if args.frames < 2 or args.rounds < 1:
        parser.error("--frames must be at least 2 and --rounds at least 1.")
    return measure_and_save(lambda: run(args.model, args.backend, args.frames, args.rounds, args.threshold),
                            markdown, args.json, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
