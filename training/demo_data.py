"""A small face-forgery dataset made from the real photos that packages ship, for tests and the demo.

    python -m training.demo_data --out data/demo [--count 256] [--size 224] [--seed 0] [--faces haar]

Sources: matplotlib's `grace_hopper.jpg` and scikit-image's `astronaut.png`; the face is found with the
SDK's face detector, OpenCV's Haar cascade unless `--faces` names another (`auto` is deployment's default,
CenterFace when installed). The random views move and scale that box anyway; the default stays Haar because
the tiny model trained on CenterFace's boxes (one training run, benchmarks/RESULTS.md "Per-track inference
on video") scored the source photos themselves as fakes (P(fake) 0.76 for Grace Hopper), where the one
trained on Haar's scored them 0.07 and 0.18.
Each "video" is a few frames of one random view of a face (crop scale and position, rotation, flip, color,
JPEG quality), the frames differing slightly. Fakes are self-blended frames
(training.self_blend) in two manipulation methods: `SelfBlendColor` (color-changed source) and
`SelfBlendFrequency` (resampled, sharpened or blurred source). Files follow the layout and name conventions
of training.data: `DIR/{train,valid}/real/real_<photo>-v<k>_f<n>.png`,
`DIR/{train,valid}/fake/fake_<Method>_<photo>-v<k>_f<n>.png`. Real and fake videos are distinct views.
The same arguments and face detector always write the same files; `demo_dataset.json` names the detector.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from fmca_rt.errors import DataError, FMCAError
from fmca_rt.faces import make_face_detector

from .self_blend import CROP_SCALE, SelfBlendConfig, self_blend

FRAMES_PER_VIDEO = 4
METHODS = {"SelfBlendColor": dict(color=True, frequency=False),
           "SelfBlendFrequency": dict(color=False, frequency=True)}
MARKER = "demo_dataset.json"
# Stronger source changes than training-time self-blending, and always a full blend: the demo shows the
# whole pipeline learning within minutes on a CPU, so its fakes are plainly visible.
DEMO_BLEND = SelfBlendConfig(rgb_shift=40.0, hue_shift=12.0, saturation_scale=0.3, value_scale=0.25, contrast=0.2,
                             down_up_scale=(0.25, 0.5), sharpen_amount=(1.5, 3.0), blur_sigma=(1.5, 3.0),
                             blend_ratios=(1.0,))


def source_photos() -> dict[str, np.ndarray]:
    """name -> RGB uint8 photo of a face, from the packages that ship them."""
    photos = {}
    try:
        from matplotlib import cbook
        bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
        if bgr is not None:
            photos["hopper"] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except (ImportError, OSError, ValueError):
        pass
    try:
        from skimage import data
        photos["astronaut"] = np.ascontiguousarray(data.astronaut())
    except (ImportError, OSError, ValueError):
        pass
    if not photos:
        raise FMCAError("No source photos: the demo dataset needs matplotlib or scikit-image "
                        "(pip install 'fmca-rt[train]').")
    return photos


def face_boxes(photos: dict[str, np.ndarray], detector) -> dict[str, tuple[int, int, int, int]]:
    boxes = {}
    for name, rgb in photos.items():
        faces = detector.detect(np.ascontiguousarray(rgb[..., ::-1]))
        if not faces:
            raise FMCAError(f"The face detector found no face in the {name} photo.")
        boxes[name] = faces[0].box  # detectors list the most certain face first
    return boxes


def describe_detector(detector) -> str:
    describe = getattr(detector, "describe", None)
    return describe() if describe is not None else type(detector).__name__


def random_view(rng: np.random.Generator) -> dict:
    return {"scale": rng.uniform(0.92, 1.12), "shift": rng.uniform(-0.06, 0.06, 2), "angle": rng.uniform(-10, 10),
            "flip": rng.random() < 0.5, "gain": rng.uniform(0.85, 1.15, 3), "quality": int(rng.integers(70, 96))}


def render_frame(rgb: np.ndarray, box, view: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size face crop (1.3x the face box, as training.prepare makes them) of one view, jittered."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * CROP_SCALE * view["scale"] * rng.uniform(0.98, 1.02)
    center = np.array([(x1 + x2) / 2, (y1 + y2) / 2]) + (view["shift"] + rng.uniform(-0.01, 0.01, 2)) * side
    zoom = size / side
    matrix = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), view["angle"] + rng.uniform(-1, 1), zoom)
    matrix[:, 2] += size / 2 - center
    crop = cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    if view["flip"]:
        crop = crop[:, ::-1]
    return np.clip(crop.astype(np.float32) * view["gain"], 0, 255).astype(np.uint8)


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1] if ok else rgb


def write_split(folder: Path, photos, boxes, videos_per_class: int, size: int, rng: np.random.Generator) -> int:
    names = sorted(photos)
    method_names = sorted(METHODS)
    written = 0
    for label in ("real", "fake"):
        (folder / label).mkdir(parents=True)
        for video in range(videos_per_class):
            photo = names[video % len(names)]
            view = random_view(rng)
            method = method_names[(video // len(names)) % len(method_names)]
            prefix = "real" if label == "real" else f"fake_{method}"
            for frame in range(FRAMES_PER_VIDEO):
                rgb = render_frame(photos[photo], boxes[photo], view, size, rng)
                if label == "fake":
                    rgb, _ = self_blend(rgb, rng, config=DEMO_BLEND, **METHODS[method])
                rgb = jpeg_round_trip(rgb, view["quality"])
                path = folder / label / f"{prefix}_{photo}-v{video:03d}_f{frame:02d}.png"
                if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
                    raise DataError(f"Cannot write {path}.")
                written += 1
    return written


def generate(out: str | Path, count: int = 256, size: int = 224, seed: int = 0, faces: str = "haar") -> dict:
    """Write the demo dataset: `count` images per class for training and a quarter as many for validation;
    `faces` names the face detector (fmca_rt.faces.make_face_detector)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise DataError(f"{out} exists and is not a demo dataset made by this command; choose an empty folder.")
    if count < 2 * FRAMES_PER_VIDEO or size < 32:
        raise DataError(f"--count must be at least {2 * FRAMES_PER_VIDEO} and --size at least 32.")
    photos = source_photos()
    detector = make_face_detector(faces, device="cpu")
    boxes = face_boxes(photos, detector)
    for split in ("train", "valid"):
        shutil.rmtree(out / split, ignore_errors=True)  # a previous demo dataset: regenerate it whole
    rng = np.random.default_rng(seed)
    videos = {"train": max(2, count // FRAMES_PER_VIDEO), "valid": max(2, count // (4 * FRAMES_PER_VIDEO))}
    counts = {split: write_split(out / split, photos, boxes, n, size, rng) for split, n in videos.items()}
    summary = {"count": count, "size": size, "seed": seed, "face_detector": describe_detector(detector),
               "photos": sorted(photos), "images": counts,
               "frames_per_video": FRAMES_PER_VIDEO, "methods": sorted(METHODS)}
    (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write DIR/{train,valid}/{real,fake} into")
    parser.add_argument("--count", type=int, default=256, help="training images per class (default 256)")
    parser.add_argument("--size", type=int, default=224, help="side of the square face crops in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faces", default="haar",
                        help="face detector: haar (default), auto (deployment's: CenterFace when installed), ...")
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, args.count, args.size, args.seed, args.faces)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write the demo dataset to {args.out}: {error.strerror or error}.", file=sys.stderr)
        return 2
    print(f"wrote {summary['images']['train']} training and {summary['images']['valid']} validation images "
          f"({', '.join(summary['photos'])}; faces by {summary['face_detector']}; fakes: "
          f"{', '.join(summary['methods'])}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
