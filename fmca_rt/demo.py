"""The end-to-end demo behind `make demo`: data -> training -> ONNX -> Detector on photos and a video.

    python -m fmca_rt.demo [--out build/demo] [--epochs 20] [--count 256]

It generates the demo dataset from the real photos packages ship (`python -m training.demo_data`), trains
the `tiny` model on the CPU for a few minutes (`python -m training.train`), exports it to ONNX
(`python -m export.onnx`), then runs the Detector on those photos (ONNX Runtime and PyTorch side by side)
and on a short generated video, printing the results and latency tables.

The demo weights come from self-blended fakes of two photos: they show the pipeline working, and are NOT a
deepfake detector. Real use needs a checkpoint trained on a real forgery dataset.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

DISCLAIMER = ("NOTE: the demo model is trained for minutes on self-blended fakes of two photos. It shows the "
              "pipeline working end to end; it is NOT a deepfake detector. Real use needs a checkpoint trained on "
              "a real forgery dataset (see README).")


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run_module(*args: str) -> None:
    command = [sys.executable, "-m", *args]
    print("$ " + " ".join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"fmca-rt demo: `{' '.join(command[2:])}` failed; see its message above.")


def demo_photos() -> dict[str, Path | np.ndarray]:
    import matplotlib
    from skimage import data

    return {"grace_hopper.jpg": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
            "astronaut.png": np.ascontiguousarray(data.astronaut()[:, :, ::-1])}


def write_demo_video(path: Path, photos: dict, frames_per_photo: int = 24, fps: int = 12) -> Path:
    """A short clip: each photo slowly zoomed and panned, 640 x 480."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for photo in photos.values():
        image = cv2.imread(str(photo)) if isinstance(photo, Path) else photo
        canvas = cv2.resize(image, (480 * image.shape[1] // image.shape[0], 480))
        for i in range(frames_per_photo):
            zoom = 1.0 + 0.2 * i / frames_per_photo
            matrix = cv2.getRotationMatrix2D((canvas.shape[1] / 2, canvas.shape[0] / 2), 0, zoom)
            matrix[0, 2] += 640 / 2 - canvas.shape[1] / 2 + 2 * i
            writer.write(cv2.warpAffine(canvas, matrix, (640, 480), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    return path


def predict_photos(onnx_path: Path, checkpoint: Path, photos: dict, out: Path) -> None:
    from .detector import Detector
    from .latency import LatencyStats

    with Detector(onnx_path) as onnx_detector, Detector(checkpoint) as torch_detector:
        for detector in (onnx_detector, torch_detector):  # the first call pays one-time set-up: leave it out
            detector.predict(next(iter(photos.values())))
            detector.latency = LatencyStats()
        print(f"{'photo':<18} {'faces':>5} {'P(fake) onnxruntime':>20} {'P(fake) torch':>14} {'|diff|':>9}  label")
        for name, photo in photos.items():
            a, b = onnx_detector.predict(photo), torch_detector.predict(photo)
            if a.fake_prob is None:
                print(f"{name:<18} {0:>5} {'-':>20} {'-':>14} {'-':>9}  {a.label}")
                continue
            print(f"{name:<18} {len(a.faces):>5} {a.fake_prob:>20.4f} {b.fake_prob:>14.4f} "
                  f"{abs(a.fake_prob - b.fake_prob):>9.1e}  {a.label}")
            cv2.imwrite(str(out / f"annotated_{Path(name).stem}.jpg"), a.plot())
        print(f"annotated photos: {out}/annotated_*.jpg")
        print()
        for detector in (onnx_detector, torch_detector):
            print(detector.latency.table(f"latency per call after one warm-up call, {detector.backend.describe()}"))
            print()


def analyse_video(onnx_path: Path, video: Path, out: Path) -> None:
    from .detector import Detector

    with Detector(onnx_path) as detector:
        run = detector.stream(video, output=out / "demo_annotated.mp4", jsonl=out / "demo_frames.jsonl",
                              summary=out / "demo_summary.json")
        summary = run.run()
        print(f"{video.name}: {summary['frames_read']} frames, {summary['frames_with_faces']} with faces, "
              f"{summary['bad_frames']} bad, video P(fake) {summary['fake_prob']} -> {summary['label']}; "
              f"{summary['fps']} frames/s")
        print(f"outputs: {out}/demo_annotated.mp4, demo_frames.jsonl, demo_summary.json")
        print()
        print(run.latency.table("video pipeline latency per call"))
        print()
        print(detector.latency.table(f"model latency per call, {detector.backend.describe()}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmca_rt.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/demo"), help="working folder (default build/demo)")
    # 3 epochs at 112 px on 128 images per class stayed at chance (validation AUC about 0.5); 20 epochs at
    # 224 px on 256 per class reaches about 0.8-0.99 in a few CPU minutes.
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--count", type=int, default=256, help="training images per class (default 256)")
    parser.add_argument("--image-size", type=int, default=224, help="model input size, a multiple of 56 (default 224)")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(DISCLAIMER)

    step("1/5 demo dataset from the photos packages ship")
    run_module("training.demo_data", "--out", str(out / "data"), "--count", str(args.count))
    step(f"2/5 train the tiny model on the CPU ({args.epochs} epochs)")
    run_module("training.train", "--data", str(out / "data"), "--out", str(out / "run"), "--preset", "tiny",
               "--epochs", str(args.epochs), "--image-size", str(args.image_size), "--overwrite")
    checkpoint, onnx_path = out / "run" / "best.pth", out / "fmca-demo.onnx"
    step("3/5 export to ONNX (checked against PyTorch)")
    run_module("export.onnx", "--checkpoint", str(checkpoint), "--output", str(onnx_path))

    photos = demo_photos()
    step("4/5 Detector on real photos: ONNX Runtime and PyTorch side by side")
    predict_photos(onnx_path, checkpoint, photos, out)
    step("5/5 Detector on a generated video")
    analyse_video(onnx_path, write_demo_video(out / "demo.mp4", photos), out)

    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
    print(DISCLAIMER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
