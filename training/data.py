"""The dataset layout on disk and what file names say: class, manipulation method and video.

Layout: `ROOT/<split>/{real,fake}/*.{png,jpg,jpeg}` (splits `train`, `valid`, optionally `test`). A folder
that holds `real/` and `fake/` directly is also accepted wherever a split is expected (cross-dataset
evaluation on any folder).

File-name conventions (what `python -m training.prepare` writes):
- manipulation method: a fake named `fake_<Method>_...` belongs to `<Method>` (FaceForensics++: Deepfakes,
  Face2Face, FaceSwap, NeuralTextures); other fakes belong to `unknown`; real images to `real`.
- video: frames of one video end in `_f<number>` or `_frame<number>`, and the video id is the name before
  that suffix (`fake_Deepfakes_000_003_f0012.png` -> `fake_Deepfakes_000_003`). A file without the suffix
  is a video of its own. Video ids are per class folder: the same id under `real/` and `fake/` names two
  videos.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fmca_rt.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
CLASS_NAMES = ("real", "fake")  # index = label: 0 real, 1 fake
REAL_METHOD = "real"
UNKNOWN_METHOD = "unknown"
LAYOUT_HINT = "expected ROOT/{train,valid}/{real,fake}/*.png|jpg|jpeg"

_METHOD_PATTERN = re.compile(r"^fake_([^_]+)_")
_FRAME_SUFFIX = re.compile(r"^(?P<video>.+)_(?:f|frame)(?P<frame>\d+)$")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 0 real, 1 fake
    method: str
    video: str  # "<class>/<video id>", unique across the two class folders


def parse_method(file_name: str, label: int) -> str:
    """`real` for real images; `<Method>` for fakes named `fake_<Method>_...`; `unknown` otherwise."""
    if label == 0:
        return REAL_METHOD
    match = _METHOD_PATTERN.match(Path(file_name).stem)
    return match.group(1) if match else UNKNOWN_METHOD


def parse_video_id(file_name: str) -> str:
    """The file's stem without a trailing `_f<number>` / `_frame<number>` frame suffix."""
    stem = Path(file_name).stem
    match = _FRAME_SUFFIX.match(stem)
    return match.group("video") if match else stem


def is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def split_folder(root: str | Path, split: str | None) -> Path:
    """`root/split`, or `root` itself when split is None or root already holds `real/` and `fake/`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Dataset folder {root} does not exist ({LAYOUT_HINT}).")
    if split is None or (split not in {p.name for p in root.iterdir()} and _has_class_folders(root)):
        return root
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"Dataset folder {root} has no '{split}' folder ({LAYOUT_HINT}).")
    return folder


def _has_class_folders(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in CLASS_NAMES)


def scan_class(folder: Path, label: int) -> list[Sample]:
    """The images directly inside one class folder, sorted by name; a missing folder has none."""
    if not folder.is_dir():
        return []
    class_name = CLASS_NAMES[label]
    return [Sample(path, label, parse_method(path.name, label), f"{class_name}/{parse_video_id(path.name)}")
            for path in sorted(folder.iterdir()) if is_image_file(path)]


def scan_split(folder: str | Path, required_classes: tuple[str, ...] = CLASS_NAMES) -> list[Sample]:
    """All samples of one split folder (real first, then fake), each required class non-empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Dataset folder {folder} does not exist ({LAYOUT_HINT}).")
    samples = []
    for label, class_name in enumerate(CLASS_NAMES):
        found = scan_class(folder / class_name, label)
        if class_name in required_classes and not found:
            where = folder / class_name
            state = "has no images (.png, .jpg, .jpeg)" if where.is_dir() else "does not exist"
            raise DataError(f"{where} {state}: the {class_name} class needs samples ({LAYOUT_HINT}).")
        samples.extend(found)
    return samples


def load_split(root: str | Path, split: str | None,
               required_classes: tuple[str, ...] = CLASS_NAMES) -> list[Sample]:
    return scan_split(split_folder(root, split), required_classes)


def describe(samples: list[Sample]) -> str:
    """One line for logs: counts per class and per fake method, and the number of videos."""
    classes = Counter(CLASS_NAMES[s.label] for s in samples)
    methods = Counter(s.method for s in samples if s.label == 1)
    videos = len({s.video for s in samples})
    method_text = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
    return (f"{classes['real']} real, {classes['fake']} fake" + (f" ({method_text})" if method_text else "")
            + f", {videos} videos")
