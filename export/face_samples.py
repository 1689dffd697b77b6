"""Real face crops for checking exported models: the photos packages ship, and folders of crops.

The shipped photos (matplotlib's `grace_hopper.jpg`, scikit-image's `astronaut.png`) are cropped with fixed
face boxes, found once with OpenCV's bundled Haar cascade and enlarged 1.3x to a square as the detector
pipeline does, so the check needs neither a detector nor a download.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from fmca_rt.errors import DataError, DependencyError, ImageError
from fmca_rt.images import read_encoded
from fmca_rt.metadata import ModelMetadata
from fmca_rt.preprocess import preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# (package, file inside the package, square face box x1, y1, x2, y2 in pixels)
_SHIPPED_FACES = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (122, 72, 410, 360)),
    ("skimage", "data/astronaut.png", (162, 51, 286, 175)),
)


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DependencyError(f"The sample face photos come with {package!r}, which is not installed: "
                              "pip install matplotlib scikit-image.")
    return Path(spec.origin).parent / relative


def read_rgb(path: Path) -> np.ndarray | None:
    """An image file as H x W x 3 RGB uint8, or None when it cannot be decoded (or is a decompression bomb)."""
    try:
        bgr = cv2.imdecode(read_encoded(path), cv2.IMREAD_COLOR)
    except (ImageError, cv2.error):
        return None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def shipped_face_crops() -> list[np.ndarray]:
    """Four RGB face crops: two photos, each also mirrored (so batches of up to 4 are all different)."""
    crops = []
    for package, relative, (x1, y1, x2, y2) in _SHIPPED_FACES:
        rgb = read_rgb(_package_file(package, relative))
        if rgb is None:
            raise DataError(f"The sample photo {relative} of {package!r} cannot be decoded.")
        crops.append(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
    return crops + [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]


def shipped_photos() -> list[np.ndarray]:
    """The two shipped photos whole (BGR), each also mirrored: inputs for checking face detector networks."""
    photos = []
    for package, relative, _ in _SHIPPED_FACES:
        bgr = cv2.imread(str(_package_file(package, relative)), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"The sample photo {relative} of {package!r} cannot be decoded.")
        photos.append(bgr)
    return photos + [np.ascontiguousarray(photo[:, ::-1]) for photo in photos]


def image_files(folder: str | Path) -> list[Path]:
    """Every image under `folder`, recursively, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of face crops.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def load_face_batch(files: list[Path], metadata: ModelMetadata) -> tuple[np.ndarray, list[Path], int]:
    """Crops preprocessed as the model expects: (pixels N x 3 x S x S, the files kept, undecodable count)."""
    crops, kept = [], []
    for path in files:
        rgb = read_rgb(path)
        if rgb is not None:
            crops.append(rgb)
            kept.append(path)
    if not crops:
        raise DataError(f"None of the {len(files)} images under {files[0].parent} could be decoded.")
    pixels = preprocess(crops, metadata.image_size, metadata.mean, metadata.std, metadata.preprocessing)
    return pixels, kept, len(files) - len(kept)


def label_of(path: Path) -> int | None:
    """1 for a file under a `fake` folder, 0 under `real` (the dataset layout), None otherwise."""
    parts = {part.lower() for part in path.parent.parts}
    if "fake" in parts and "real" not in parts:
        return 1
    if "real" in parts and "fake" not in parts:
        return 0
    return None
