"""From videos to face-crop frames in the training layout.

    python -m training.prepare --videos FaceForensics++ --out data/ffpp --splits ffpp/splits [--frames 32]
    python -m training.prepare --videos my_videos --out data/mine --valid-fraction 0.2

For every video: `--frames` evenly spaced frames (default 32); in each, the largest face the SDK's face
detector finds (`fmca_rt.faces`, the same default detector as deployment), cut as a square 1.3x the face box
around its centre (turned so the eyes are level with `--align-faces`) and resized to
`--size` px with the SDK's resize (`fmca_rt.preprocess.resize_rgb`). Written as
`OUT/<split>/real/real_<video>_f<frame>.png` and `OUT/<split>/fake/fake_<Method>_<video>_f<frame>.png`
(the conventions of training.data). Videos are split by video group, never by frame (see
training.video_sources). Frames without a face and videos that cannot be decoded are skipped and counted;
`OUT/prepare_report.json` records what was written and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fmca_rt.errors import FMCAError
from fmca_rt.faces import crop_faces, make_face_detector
from fmca_rt.preprocess import resize_rgb

from .video_sources import SourceVideo, discover, split_officially, split_randomly

_detector = None  # one per worker process (OpenCV detectors cannot be pickled)
_align = False  # eye-level crops (--align-faces), as the Detector's align_faces=True cuts them


def sample_frame_indices(frame_count: int, count: int) -> list[int]:
    """`count` frame indices spread evenly from the first to the last frame (all frames if fewer)."""
    if frame_count <= 0 or count <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, frame_count - 1, min(count, frame_count))})


def read_frames(path: Path, count: int):
    """Yield (index, BGR frame) for evenly spaced frames, decoding sequentially (seeking is unreliable)."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return
        wanted = set(sample_frame_indices(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), count))
        last = max(wanted, default=-1)
        index = 0
        while index <= last:
            ok = capture.grab()
            if not ok:
                return
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    yield index, frame
            index += 1
    finally:
        capture.release()


def output_name(video: SourceVideo, frame_index: int) -> str:
    prefix = "real" if video.label == 0 else f"fake_{video.method}"
    return f"{prefix}_{video.video_id}_f{frame_index:04d}.png"


def process_video(video: SourceVideo, folder: Path, frames: int, size: int, scale: float, resize: str) -> dict:
    """Write one video's face crops into `folder`; counts of written frames and frames without a face."""
    folder.mkdir(parents=True, exist_ok=True)
    written = no_face = 0
    for index, bgr in read_frames(video.path, frames):
        faces = _detector.detect(bgr)
        if not faces:
            no_face += 1
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        crop = crop_faces(bgr, [largest], scale=scale, align=_align)[0]
        if crop.size == 0:
            no_face += 1
            continue
        rgb = resize_rgb(crop, size, resize)
        if not cv2.imwrite(str(folder / output_name(video, index)), np.ascontiguousarray(rgb[..., ::-1])):
            raise FMCAError(f"Cannot write face crops into {folder}.")
        written += 1
    return {"written": written, "no_face": no_face, "unreadable": written + no_face == 0}


def _init_worker(faces: str, align: bool = False) -> None:
    global _detector, _align
    _detector, _align = make_face_detector(faces), align


def _run(job):
    split, video, folder, frames, size, scale, resize = job
    return split, video, process_video(video, folder, frames, size, scale, resize)


def prepare(videos_root, out, frames: int = 32, size: int = 224, scale: float = 1.3, faces: str = "auto",
            resize: str = "pil-bilinear", splits_dir=None, valid_fraction: float = 0.2, test_fraction: float = 0.0,
            compression: str = "c23", methods=None, seed: int = 0, workers: int = 1, progress=print,
            align_faces: bool = False) -> dict:
    videos = discover(videos_root, compression, methods)
    if splits_dir:
        splits, left_out = split_officially(videos, splits_dir)
    else:
        splits, left_out = split_randomly(videos, valid_fraction, test_fraction, seed), 0
    out = Path(out)
    jobs = [(split, video, out / split / ("real" if video.label == 0 else "fake"), frames, size, scale, resize)
            for split, members in sorted(splits.items()) for video in members]
    counts = Counter()
    unreadable_videos = []
    if workers > 1:
        executor = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(faces, align_faces))
        results = executor.map(_run, jobs, chunksize=1)
    else:
        executor = None
        _init_worker(faces, align_faces)
        results = map(_run, jobs)
    try:
        for number, (split, video, result) in enumerate(results, start=1):
            counts[(split, video.method, "frames")] += result["written"]
            counts["no_face"] += result["no_face"]
            if result["unreadable"]:
                unreadable_videos.append(str(video.path))
            progress(f"[{number}/{len(jobs)}] {video.path.name}: {result['written']} faces"
                     + (f", {result['no_face']} frames without a face" if result["no_face"] else "")
                     + (" (no frame could be decoded)" if result["unreadable"] else ""))
    finally:
        if executor is not None:
            executor.shutdown()
    report = {
        "videos": {split: len(members) for split, members in sorted(splits.items())},
        "frames": {split: {method: counts[(split, method, "frames")] for method in sorted({v.method for v in members})}
                   for split, members in sorted(splits.items())},
        "frames_without_face": counts["no_face"], "unreadable_videos": unreadable_videos,
        "videos_in_no_split": left_out,
        "settings": {"frames": frames, "size": size, "scale": scale, "faces": str(faces), "resize": resize,
                     "align_faces": align_faces,
                     "splits": str(splits_dir) if splits_dir else None, "valid_fraction": valid_fraction,
                     "test_fraction": test_fraction, "seed": seed},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", required=True, help="FaceForensics++ root, or a folder with real/ and fake/")
    parser.add_argument("--out", required=True, help="dataset root to write OUT/<split>/{real,fake}/ into")
    parser.add_argument("--frames", type=int, default=32, help="evenly spaced frames per video (default 32)")
    parser.add_argument("--size", type=int, default=224, help="side of the saved face crops (default 224)")
    parser.add_argument("--scale", type=float, default=1.3, help="crop side / face box side (default 1.3)")
    parser.add_argument("--faces", default="auto", help="face detector: auto (the SDK's default, a CNN), "
                        "centerface, retinaface, haar, a YuNet .onnx file, or none")
    parser.add_argument("--align-faces", action="store_true",
                        help="turn each crop so the eyes are level (deploy with Detector(..., align_faces=True))")
    parser.add_argument("--resize", default="pil-bilinear", help="resize method of fmca_rt.preprocess")
    parser.add_argument("--splits", help="folder with FaceForensics++'s train.json, val.json, test.json")
    parser.add_argument("--valid-fraction", type=float, default=0.2, help="without --splits (default 0.2)")
    parser.add_argument("--test-fraction", type=float, default=0.0, help="without --splits (default 0)")
    parser.add_argument("--compression", default="c23", help="FaceForensics++ quality folder (default c23)")
    parser.add_argument("--methods", nargs="+", help="FaceForensics++ methods (default: all present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="videos processed in parallel")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.videos, args.out, args.frames, args.size, args.scale, args.faces, args.resize,
                         args.splits, args.valid_fraction, args.test_fraction, args.compression, args.methods,
                         args.seed, args.workers, align_faces=args.align_faces)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    written = sum(n for split in report["frames"].values() for n in split.values())
    print(f"wrote {written} face crops from {sum(report['videos'].values())} videos to {args.out} "
          f"({report['frames_without_face']} frames without a face, {len(report['unreadable_videos'])} "
          f"unreadable videos); report: {Path(args.out) / 'prepare_report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
