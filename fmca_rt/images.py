"""Turning what users pass (paths, folders, globs, NumPy arrays, PIL images) into BGR uint8 images.

Every image becomes H x W x 3 BGR uint8 (OpenCV's convention): grayscale is expanded, alpha dropped,
16-bit and float images scaled to 8 bits. Anything that cannot become one raises ImageError with one
sentence naming the file and the reason. An image larger than MAX_PIXELS is refused from its header, before
it is decoded (image_header.py), and a PIL image from its size, before its pixels are loaded.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError
from .image_header import header_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# 16k x 16k: beyond this an image is almost surely a mistake, and decoding it would take gigabytes.
MAX_PIXELS = 1 << 28


def expand_image_paths(items: Iterable[str | Path]) -> list[Path]:
    """Files, folders (their images, sorted, recursively) and glob patterns -> image paths, in order.

    A name that matches nothing is kept, so reading it later reports it as missing rather than
    silently skipping it."""
    paths: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif not path.exists() and glob.has_magic(text):
            paths.extend(sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()))
        else:
            paths.append(path)
    return paths


def check_pixel_count(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name} is {width} x {height} pixels, more than the {MAX_PIXELS:,}-pixel limit; "
                         "downscale it first.")


def read_encoded(path: str | Path) -> np.ndarray:
    """A file's bytes, checked before decoding: not empty, not a truncated JPEG, not too large."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path} does not exist or is not a file.")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: it cannot open non-ASCII paths on Windows
    except OSError as error:
        raise ImageError(f"{path} cannot be read: {error.strerror or error}.") from None
    if data.size == 0:
        raise ImageError(f"{path} is empty (0 bytes).")
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-16:].tobytes():
        raise ImageError(f"{path} is a truncated JPEG (no end-of-image marker).")
    size = header_size(data)
    if size is not None:
        check_pixel_count(*size, str(path))
    return data


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to BGR uint8."""
    data = read_encoded(path)
    # Not IMREAD_UNCHANGED: it ignores the EXIF orientation, and phone photos would arrive sideways.
    image = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageError(f"{path} is not a readable image (corrupt, truncated, too large, or not an image "
                         "format OpenCV can decode).")
    return to_bgr_uint8(image, str(path), channel_order="bgr")


def to_bgr_uint8(image: np.ndarray, name: str = "image", channel_order: str = "bgr") -> np.ndarray:
    """Any 2-D or 3-D array of 1, 3 or 4 channels, 8/16-bit or float in [0, 1] -> BGR uint8."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name} is a {type(image).__name__}, not an image array.")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"{name} has shape {image.shape}; expected H x W (gray), H x W x 3 or H x W x 4.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{name} is empty (shape {image.shape}).")
    check_pixel_count(image.shape[1], image.shape[0], name)
    image = _to_uint8(image, name)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channel_order == "rgb":
        code = cv2.COLOR_RGBA2BGR if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        return cv2.cvtColor(image, code)
    return np.ascontiguousarray(image[:, :, :3])


def _to_uint8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ImageError(f"{name} contains NaN or infinite values.")
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    raise ImageError(f"{name} has pixel type {image.dtype}; expected uint8, uint16 or float in [0, 1].")


def load_image(image) -> tuple[np.ndarray, str]:
    """A path, a BGR NumPy array (OpenCV convention) or a PIL image -> (BGR uint8, a name for reports)."""
    if isinstance(image, (str, Path)):
        return read_image(image), str(image)
    if isinstance(image, np.ndarray):
        return to_bgr_uint8(image, "array", channel_order="bgr"), "array"
    if type(image).__module__.startswith("PIL."):
        return _from_pil(image), getattr(image, "filename", "") or "PIL image"
    raise ImageError(f"Cannot read a {type(image).__name__} as an image; pass a path, a NumPy BGR array "
                     "or a PIL image.")


def _from_pil(image) -> np.ndarray:
    name = getattr(image, "filename", "") or "PIL image"
    check_pixel_count(*image.size, name)  # before the pixels are loaded: PIL images load lazily
    try:
        if image.mode.startswith("I;16"):
            return to_bgr_uint8(np.asarray(image).astype(np.uint16), name)
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGB")
        return to_bgr_uint8(np.asarray(image), name, channel_order="rgb")
    except (OSError, ValueError, SyntaxError) as error:  # PIL's truncated or corrupt files, on first access
        raise ImageError(f"{name} cannot be decoded: {error}.") from None
