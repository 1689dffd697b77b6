"""`fmca-rt video SOURCE --model M [--output OUT.mp4|display://0] [--jsonl OUT] [--summary OUT] [--classify-every N]`.

Outputs are checked before the model loads (never an input, the model or each other; writable). The verdict
so far is printed however the run ends. Exit status: 0 when every frame was decoded and scored; 1 when
frames were skipped or could not be scored, the run failed midway or the source was lost, or an output
could not be written; 128 + the signal's number when stopped by a signal (a live source's outputs are then
complete; a file's go to `.incomplete` names, see outputs.py).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ..abstain import UNCERTAIN
from ..errors import FMCAError
from ..interrupts import exit_status, signal_name
from .capture import add_reconnect_arguments, backoff_from_arguments
from .outputs import FAILED, WHOLE_RUN
from .track_scores import ClassifyPolicy


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli import add_detector_arguments, positive_int

    parser.add_argument("source", help="video file, image folder/glob, camera index, /dev/videoN, csi://N, rtsp://...")
    add_detector_arguments(parser)
    parser.add_argument("--output", "-o", help="annotated video file (.mp4, .avi, ...) or display://0")
    parser.add_argument("--jsonl", type=Path, help="one JSON line per frame")
    parser.add_argument("--summary", type=Path, help="the run's summary as JSON")
    parser.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    parser.add_argument("--queue-size", type=positive_int, default=8, help="frames buffered between capture and model")
    parser.add_argument("--gstreamer", choices=["auto", "always", "never"], default="auto",
                        help="use GStreamer pipelines (hardware decode on Jetson) when OpenCV has GStreamer")
    parser.add_argument("--classify-every", type=positive_int, default=ClassifyPolicy.every, metavar="N",
                        help="classify a tracked face again every N frames, or sooner when its box changes or its "
                             f"score nears the threshold; 1 = every face on every frame ({ClassifyPolicy.every})")
    add_reconnect_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary")


def check_video_outputs(args: argparse.Namespace) -> None:
    from ..images import expand_image_paths
    from ..output_paths import OutputPaths
    from .sources import parse_source

    source = parse_source(args.source)
    inputs = [source.location] if source.kind == "file" else \
        expand_image_paths([source.location]) if source.kind == "images" else []
    outputs = OutputPaths(inputs=inputs, model=args.model)
    if args.output is not None and "://" not in str(args.output):
        outputs.file("--output", args.output)
    outputs.file("--jsonl", args.jsonl)
    outputs.file("--summary", args.summary)
    outputs.check()


def run_video(args: argparse.Namespace) -> int:
    from ..cli import make_detector
    from ..progress import progress

    policy = ClassifyPolicy(every=args.classify_every)
    backoff = backoff_from_arguments(args)
    check_video_outputs(args)
    detector = make_detector(args)
    run = detector.stream(args.source, output=args.output, jsonl=args.jsonl, summary=args.summary,
                          queue_size=args.queue_size, gstreamer=args.gstreamer, max_frames=args.max_frames,
                          classify=policy, backoff=backoff)
    total = run.frame_count if args.max_frames is None else args.max_frames
    bar = progress(total=total, desc="frames", enabled=not args.quiet)
    frames, stop = iter(run), None
    try:
        for frame in frames:
            if frame.error:
                bar.write(f"frame {frame.index}: {'not scored' if frame.faces else 'skipped'}: {frame.error}",
                          error=True)
            bar.update()
    except (KeyboardInterrupt, FMCAError) as error:
        stop = error
    finally:
        frames.close()  # ends the run now (not when garbage-collected): outputs are moved into place
        bar.close()
    if run.summary is None:  # the run never started: an output could not be opened
        raise stop
    print_summary(args.source, run.summary, run, detector)
    return _video_exit(run, stop)


def print_summary(source: str, summary: dict, run, detector) -> None:
    if summary["fake_prob"] is not None:
        verdict = (f"{summary['label']} (mean P(fake) over {summary['frames_with_faces']} frames with faces: "
                   f"{summary['fake_prob']:.3f})")
    else:
        verdict = "no score (the model's output was not finite)" if summary["label"] == "error" else "no face found"
    status = "" if summary["status"] == "complete" else f" [{summary['status']} run: what was analysed so far]"
    print(f"{source}: {verdict}{status}")
    if summary["tracks"]:
        verdicts = Counter(track["label"] for track in summary["tracks"])
        count = len(summary["tracks"])
        print(f"{count} face track{'s' if count > 1 else ''}: " +
              ", ".join(f"{verdicts[label]} {label}" for label in ("fake", UNCERTAIN, "real") if label in verdicts))
    unscored = f", {summary['unscored_frames']} not scored" if summary["unscored_frames"] else ""
    print(f"{summary['frames_read']} frames read, {summary['frames_analysed']} analysed, {summary['bad_frames']} bad "
          f"(skipped){unscored}, {summary['dropped_frames']} dropped to keep up, {summary['reconnects']} reconnects, "
          f"{summary['fps']} frames/s")
    for track in summary["tracks"]:
        print(f"  face #{track['track_id']}: {track['label']} (mean P(fake) {track['fake_prob']:.3f} over frames "
              f"{track['first_frame']}-{track['last_frame']}, {track['fresh_scores']} of {track['frames']} classified)")
    print(run.latency.table("pipeline latency per call") + "\n" + detector.latency.table("model latency per call"))
    if run.outputs.written:
        print("wrote " + ", ".join(f"--{option} {path}" for option, path in run.outputs.written.items()))


def _what_was_written(run) -> str:
    if not any(path is not None for path in (run.output, run.jsonl_path, run.summary_path)):
        return "no output file was asked for"
    if not run.outputs.written:
        return "no output file could be written"
    if run.summary["status"] in WHOLE_RUN:
        return "the files written hold everything analysed"
    return "what was analysed is in the .incomplete files written; files of an earlier run were left as they were"


def _video_exit(run, stop) -> int:
    summary = run.summary
    for message in run.outputs.errors:
        print(f"fmca-rt: error: {message}", file=sys.stderr)
    done = f"after {summary['frames_analysed']} analysed frames; {_what_was_written(run)}"
    if isinstance(stop, KeyboardInterrupt):
        print(f"fmca-rt: interrupted by {signal_name(stop)} {done}.", file=sys.stderr)
        return exit_status(stop)
    if summary["status"] == FAILED:
        print(f"fmca-rt: the run failed: {summary['error']} ({done}).", file=sys.stderr)
        return 1
    return 1 if summary["bad_frames"] or summary["unscored_frames"] or run.outputs.errors else 0
