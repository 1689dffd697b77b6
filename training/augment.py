"""The paper's training augmentations, applied to face crops already resized to the model's input size.

Order: Gaussian blur, down-up resize, horizontal flip, rotation (up to 12 degrees), color jitter (brightness,
contrast, saturation 0.2, hue 0.1) on the uint8 crop; random erasing on the normalized tensor (erased
pixels become 0, the dataset mean). The paper names the operations but not their probabilities; the values
below are this project's choice. Every random draw comes from the numpy Generator passed in, so a sample's
augmentation depends only on (seed, epoch, index): the same under any number of processes or data-loader
workers, and after --resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image, ImageEnhance, ImageFilter


@dataclass(frozen=True)
class AugmentConfig:
    blur_probability: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    down_up_probability: float = 0.2
    down_up_scale: tuple[float, float] = (0.5, 0.9)
    flip_probability: float = 0.5
    rotation_degrees: float = 12.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    erase_probability: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.2)
    erase_aspect: tuple[float, float] = (0.3, 3.3)


AUGMENTATIONS: dict[str, AugmentConfig | None] = {
    "paper": AugmentConfig(),
    # Horizontal flips only: for short runs from random weights on small data (the demo), where the paper's
    # blur, resampling, rotation, color jitter and erasing slow learning more than a few hundred steps allow.
    "light": AugmentConfig(blur_probability=0.0, down_up_probability=0.0, rotation_degrees=0.0, brightness=0.0,
                           contrast=0.0, saturation=0.0, hue=0.0, erase_probability=0.0),
    "none": None,
}


def augment_rgb(rgb: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Randomly blurred, down-up resized, flipped, rotated and color-jittered copy of an H x W x 3 uint8 crop."""
    image = Image.fromarray(rgb)
    width, height = image.size
    if rng.random() < config.blur_probability:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(*config.blur_sigma))))
    if rng.random() < config.down_up_probability:
        scale = rng.uniform(*config.down_up_scale)
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(small, Image.Resampling.BILINEAR).resize((width, height), Image.Resampling.BILINEAR)
    if rng.random() < config.flip_probability:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if config.rotation_degrees:
        angle = float(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR)
    image = color_jitter(image, rng, config)
    return np.asarray(image)


def color_jitter(image: Image.Image, rng: np.random.Generator, config: AugmentConfig) -> Image.Image:
    """Brightness, contrast, saturation and hue in a random order, like torchvision's ColorJitter."""
    def jitter_factor(amount: float) -> float:
        return float(rng.uniform(max(0.0, 1 - amount), 1 + amount))

    operations = [
        (config.brightness, lambda im: ImageEnhance.Brightness(im).enhance(jitter_factor(config.brightness))),
        (config.contrast, lambda im: ImageEnhance.Contrast(im).enhance(jitter_factor(config.contrast))),
        (config.saturation, lambda im: ImageEnhance.Color(im).enhance(jitter_factor(config.saturation))),
        (config.hue, lambda im: TF.adjust_hue(im, float(rng.uniform(-config.hue, config.hue)))),
    ]
    for index in rng.permutation(len(operations)):
        amount, operation = operations[index]
        if amount:  # a zero amount is no change (the HSV round trip of a zero hue shift would still round)
            image = operation(image)
    return image


def random_erase(pixels: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Zero a random rectangle of a normalized 3 x H x W array (in place) with probability erase_probability."""
    if rng.random() >= config.erase_probability:
        return pixels
    _, height, width = pixels.shape
    for _ in range(10):  # a rectangle that fits, as torchvision's RandomErasing tries
        area = height * width * rng.uniform(*config.erase_area)
        aspect = math.exp(rng.uniform(math.log(config.erase_aspect[0]), math.log(config.erase_aspect[1])))
        box_h, box_w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < box_h < height and 0 < box_w < width:
            top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
            pixels[:, top:top + box_h, left:left + box_w] = 0.0
            break
    return pixels
