"""Self-blended images (Shiohara & Yamasaki, CVPR 2022): fakes made from a real face alone.

A copy of the face (the source) is slightly changed in color, in frequency content and in position, then
blended back into the original (the target) under a soft, randomly deformed face mask. The result carries
the traces every face swap leaves (a blending boundary, color and sharpness mismatches, misalignment)
without any particular generator's fingerprint, which is why detectors trained on it generalize.

The mask is an ellipse inside the face box: crops made by `python -m training.prepare` (or
`fmca_rt.faces.crop_faces`) are squares 1.3x the face box, so by default the face box is the crop's central
1/1.3. Random draws come from the Generator passed in (reproducible per sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_SCALE = 1.3  # the face crops' size relative to the detected face box
FREQUENCY_CHANGES = ("resample", "sharpen", "blur")


@dataclass(frozen=True)
class SelfBlendConfig:
    rgb_shift: float = 20.0  # per-channel offset, in grey levels
    hue_shift: float = 6.0  # degrees
    saturation_scale: float = 0.2
    value_scale: float = 0.15
    contrast: float = 0.1
    down_up_scale: tuple[float, float] = (0.4, 0.8)
    sharpen_amount: tuple[float, float] = (0.5, 1.5)
    blur_sigma: tuple[float, float] = (0.6, 1.6)
    shift_fraction: float = 0.03
    scale_range: tuple[float, float] = (0.95, 1.05)
    mask_deform_fraction: float = 0.04
    mask_blur_fraction: tuple[float, float] = (0.02, 0.08)
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def default_face_box(height: int, width: int) -> tuple[float, float, float, float]:
    """The face box of a crop made 1.3x around it: the central 1/1.3 of the image."""
    half_w, half_h = width / (2 * CROP_SCALE), height / (2 * CROP_SCALE)
    return (width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h)


def face_mask(height: int, width: int, rng: np.random.Generator, face_box=None,
              config: SelfBlendConfig = SelfBlendConfig()) -> np.ndarray:
    """A soft float32 H x W mask in [0, 1]: a jittered ellipse in the face box, elastically deformed, blurred."""
    x1, y1, x2, y2 = face_box or default_face_box(height, width)
    box_w, box_h = x2 - x1, y2 - y1
    center = ((x1 + x2) / 2 + rng.uniform(-0.04, 0.04) * box_w, (y1 + y2) / 2 + rng.uniform(-0.02, 0.08) * box_h)
    axes = (box_w / 2 * rng.uniform(0.7, 0.95), box_h / 2 * rng.uniform(0.8, 1.05))
    mask = np.zeros((height, width), np.float32)
    cv2.ellipse(mask, (round(center[0]), round(center[1])), (max(1, round(axes[0])), max(1, round(axes[1]))),
                float(rng.uniform(-15, 15)), 0, 360, 1.0, thickness=-1)
    mask = _elastic_deform(mask, rng, config.mask_deform_fraction * max(height, width))
    sigma = rng.uniform(*config.mask_blur_fraction) * max(box_w, box_h)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(sigma, 0.5))
    return np.clip(mask, 0.0, 1.0)


def _elastic_deform(mask: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    height, width = mask.shape
    coarse = rng.uniform(-amplitude, amplitude, size=(2, 4, 4)).astype(np.float32)
    dx, dy = (cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(mask, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def color_transform(rgb: np.ndarray, rng: np.random.Generator, config: SelfBlendConfig) -> np.ndarray:
    """RGB shift, hue/saturation/value change and a contrast change of a uint8 image."""
    image = rgb.astype(np.float32) + rng.uniform(-config.rgb_shift, config.rgb_shift, size=3).astype(np.float32)
    hsv = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue_shift, config.hue_shift) / 2) % 180  # OpenCV: 0..180
    hsv[..., 1] *= 1 + rng.uniform(-config.saturation_scale, config.saturation_scale)
    hsv[..., 2] *= 1 + rng.uniform(-config.value_scale, config.value_scale)
    image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    image = (image - image.mean()) * (1 + rng.uniform(-config.contrast, config.contrast)) + image.mean()
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def frequency_transform(rgb: np.ndarray, rng: np.random.Generator, config: SelfBlendConfig,
                        kind: str | None = None) -> np.ndarray:
    """`kind` (a random one when None) of FREQUENCY_CHANGES: down-up resize, unsharp masking, Gaussian blur."""
    height, width = rgb.shape[:2]
    choice = rng.integers(len(FREQUENCY_CHANGES)) if kind is None else FREQUENCY_CHANGES.index(kind)
    if FREQUENCY_CHANGES[choice] == "resample":
        scale = rng.uniform(*config.down_up_scale)
        small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigmaX=rng.uniform(*config.blur_sigma))
    if FREQUENCY_CHANGES[choice] == "sharpen":
        amount = rng.uniform(*config.sharpen_amount)
        return cv2.addWeighted(rgb, 1 + amount, blurred, -amount, 0)
    return blurred


def spatial_transform(rgb: np.ndarray, rng: np.random.Generator, config: SelfBlendConfig) -> np.ndarray:
    """A small random scale about the centre and shift, so the blended face is slightly misaligned."""
    height, width = rgb.shape[:2]
    scale = rng.uniform(*config.scale_range)
    shift = rng.uniform(-config.shift_fraction, config.shift_fraction, size=2) * (width, height)
    matrix = np.array([[scale, 0, (1 - scale) * width / 2 + shift[0]],
                       [0, scale, (1 - scale) * height / 2 + shift[1]]], np.float32)
    return cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def self_blend(rgb: np.ndarray, rng: np.random.Generator, face_box=None, color: bool = True,
               frequency: bool = True, config: SelfBlendConfig = SelfBlendConfig(),
               frequency_kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fake uint8 H x W x 3, blend mask float32 H x W) made from one real face crop.

    `color` / `frequency` allow those source changes (each applied with probability 1/2 when both are
    allowed, always when only one is); `frequency_kind` fixes which frequency change (one of
    FREQUENCY_CHANGES; random when None). The source is always slightly moved.
    """
    source = rgb
    use_color = color and (not frequency or rng.random() < 0.5)
    use_frequency = frequency and (not color or not use_color or rng.random() < 0.5)
    if use_color:
        source = color_transform(source, rng, config)
    if use_frequency:
        source = frequency_transform(source, rng, config, frequency_kind)
    source = spatial_transform(source, rng, config)
    mask = face_mask(rgb.shape[0], rgb.shape[1], rng, face_box, config)
    mask *= float(rng.choice(config.blend_ratios))
    blended = mask[..., None] * source.astype(np.float32) + (1 - mask[..., None]) * rgb.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8), mask
