"""THE preprocessing of face crops, shared by training and every runtime backend.

A crop (H x W x 3 RGB uint8) is resized to image_size x image_size (no crop, aspect not kept), scaled to
[0, 1] and normalized per channel, exactly as the published training script did with torchvision
(`Resize((S, S))` on a PIL image, `ToTensor`, `Normalize`). The resize method is part of the model's
metadata (`FMCAConfig.preprocessing`), so a model is always fed what it was trained on.

"pil-bilinear" is Pillow's antialiased bilinear resampling on uint8. With Pillow installed (training and
the `train` extra always have it) Pillow itself does it, so the runtime sees exactly what torchvision fed
the model. Without Pillow (the numpy + OpenCV core, e.g. on a Jetson) a NumPy port of Pillow's algorithm
runs: a separable filter whose triangle kernel widens with the downscale factor, weights in 22-bit fixed
point, a horizontal then a vertical pass, each rounded and clipped to uint8. Each pass alone is bit-exact
with Pillow 13; resizing along both axes, Pillow 13's output matches the opposite pass order for some sizes
(seen here, not documented), so the two can differ by one grey level on a few pixels
(tests/test_sdk_preprocess.py bounds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from .errors import ImageError
from .normalization import IMAGENET_MEAN, IMAGENET_STD

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images


def _pil_bilinear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel: the first input index and the fixed-point weights of its taps (zero-padded)."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 1.0 * filter_scale  # the bilinear (triangle) filter has support 1
    taps = int(np.ceil(support)) * 2 + 1
    first = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, taps), dtype=np.float64)
    for out_index in range(out_size):
        center = (out_index + 0.5) * scale
        start = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        offsets = (np.arange(start, stop) - center + 0.5) * (1.0 / filter_scale)  # Pillow multiplies
        w = np.clip(1.0 - np.abs(offsets), 0.0, None)
        total = w.sum()
        if total != 0.0:
            w = w / total
        first[out_index] = start
        weights[out_index, : stop - start] = w
    fixed = np.where(weights < 0, np.trunc(-0.5 + weights * (1 << _PRECISION_BITS)),
                     np.trunc(0.5 + weights * (1 << _PRECISION_BITS))).astype(np.int64)
    return first, fixed


_cached_weights = lru_cache(maxsize=64)(_pil_bilinear_weights)


def _pil_resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    in_size = image.shape[axis]
    first, weights = _cached_weights(in_size, out_size)
    indices = np.minimum(first[:, None] + np.arange(weights.shape[1]), in_size - 1)  # padded taps weigh 0
    moved = np.moveaxis(image, axis, 0).astype(np.int64)  # (in_size, other, channels)
    gathered = moved[indices]  # (out_size, taps, other, channels)
    acc = (gathered * weights[:, :, None, None]).sum(axis=1) + (1 << (_PRECISION_BITS - 1))
    result = np.clip(acc >> _PRECISION_BITS, 0, 255).astype(np.uint8)
    return np.moveaxis(result, 0, axis)


def _resize_pil_bilinear(rgb: np.ndarray, size: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        return _resize_pil_bilinear_numpy(rgb, size)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def _resize_pil_bilinear_numpy(rgb: np.ndarray, size: int) -> np.ndarray:
    out = rgb
    if out.shape[1] != size:
        out = _pil_resample_axis(out, size, axis=1)
    if out.shape[0] != size:
        out = _pil_resample_axis(out, size, axis=0)
    return np.ascontiguousarray(out)


def _resize_cv2(interpolation: int):
    def resize(rgb: np.ndarray, size: int) -> np.ndarray:
        return cv2.resize(rgb, (size, size), interpolation=interpolation)
    return resize


RESIZE_METHODS = {
    "pil-bilinear": _resize_pil_bilinear,   # torchvision Resize on PIL images (the published script)
    "cv2-area": _resize_cv2(cv2.INTER_AREA),
    "cv2-bilinear": _resize_cv2(cv2.INTER_LINEAR),  # no antialiasing: only for models trained with it
}


def resize_rgb(rgb: np.ndarray, size: int, method: str = "pil-bilinear") -> np.ndarray:
    """Resize an H x W x 3 uint8 RGB image to size x size with the named method."""
    try:
        resize = RESIZE_METHODS[method]
    except KeyError:
        raise ImageError(f"Unknown preprocessing method {method!r}; "
                              f"choose one of: {', '.join(sorted(RESIZE_METHODS))}.") from None
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ImageError(f"Expected an H x W x 3 uint8 RGB image, got a {described}.")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"Cannot resize an empty image of shape {rgb.shape}.")
    return resize(rgb, int(size))


def preprocess(crops_rgb: Sequence[np.ndarray], image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD, method: str = "pil-bilinear") -> np.ndarray:
    """Face crops (H x W x 3 RGB uint8) -> float32 B x 3 x S x S, normalized like ToTensor + Normalize."""
    batch = np.empty((len(crops_rgb), 3, image_size, image_size), dtype=np.float32)
    mean32 = np.asarray(mean, dtype=np.float32)[:, None, None]
    std32 = np.asarray(std, dtype=np.float32)[:, None, None]
    for i, crop in enumerate(crops_rgb):
        resized = resize_rgb(crop, image_size, method)
        scaled = resized.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        batch[i] = (scaled - mean32) / std32
    return batch
