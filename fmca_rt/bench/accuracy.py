"""Real face crops for the benchmark's accuracy columns, and how far a variant's outputs move from float32.

The crops are the faces in the photos that matplotlib and scikit-image ship (export.face_samples), mirrored,
plus fixed photometric variants of each (brightness, contrast, blur, noise, JPEG, low resolution), so the
check covers more than two exposures of two faces, and seeded self-blended fakes of each (training.self_blend),
so that a trained model's P(fake) spans both classes: on real faces alone it sits near 0, where softmax hides
logit errors. Static INT8 is calibrated on *other* variants of the same faces (random sub-windows and colour
jitter), never on the crops it is measured on.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np



def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _jpeg(rgb: np.ndarray, quality: int = 40) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else rgb


def _low_resolution(rgb: np.ndarray, factor: int = 4) -> np.ndarray:
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (max(width // factor, 1), max(height // factor, 1)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _noise(rgb: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0.0, sigma, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


AUGMENTATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "darker": lambda rgb: cv2.convertScaleAbs(rgb, alpha=0.6),
    "brighter": lambda rgb: cv2.convertScaleAbs(rgb, alpha=1.0, beta=50),
    "low-contrast": lambda rgb: cv2.convertScaleAbs(rgb, alpha=0.5, beta=64),
    "blur": lambda rgb: cv2.GaussianBlur(rgb, (7, 7), 2.0),
    "noise": _noise,
    "jpeg40": _jpeg,
    "low-resolution": _low_resolution,
}


def shipped_crops() -> list[np.ndarray]:
    from export.face_samples import shipped_face_crops

    return shipped_face_crops()


def self_blended_crops(base: list[np.ndarray], per_crop: int = 4, seed: int = 2) -> list[np.ndarray]:
    """Seeded self-blended fakes of each crop (the kind of fake the training recipe teaches)."""
    from training.self_blend import self_blend

    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(self_blend(crop, rng)[0]) for crop in base for _ in range(per_crop)]


def accuracy_crops(base: list[np.ndarray]) -> list[np.ndarray]:
    """The crops themselves, each fixed augmentation of each, and self-blended fakes of each."""
    return [np.ascontiguousarray(crop) for crop in base] + \
        [np.ascontiguousarray(augment(crop)) for augment in AUGMENTATIONS.values() for crop in base] + \
        self_blended_crops(base)


def calibration_crops(base: list[np.ndarray], per_crop: int = 6, seed: int = 1) -> list[np.ndarray]:
    """Random sub-windows (80-100 % of each side) with brightness/contrast jitter: not the measured crops."""
    rng = np.random.default_rng(seed)
    crops = []
    for crop in base:
        height, width = crop.shape[:2]
        for _ in range(per_crop):
            h, w = int(height * rng.uniform(0.8, 1.0)), int(width * rng.uniform(0.8, 1.0))
            y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            window = crop[y:y + h, x:x + w]
            crops.append(np.ascontiguousarray(cv2.convertScaleAbs(window, alpha=rng.uniform(0.7, 1.2),
                                                                  beta=rng.uniform(-20, 20))))
    return crops


def compare_outputs(reference_logits: np.ndarray, logits: np.ndarray, fake_index: int) -> dict:
    """Max |delta logit| and max/mean |delta P(fake)| of `logits` against the reference's."""
    delta_logits = np.abs(logits.astype(np.float64) - reference_logits)
    delta_prob = np.abs(softmax(logits.astype(np.float64))[:, fake_index] -
                        softmax(reference_logits.astype(np.float64))[:, fake_index])
    return {"crops": int(len(logits)), "max_abs_logit_diff": float(delta_logits.max()),
            "max_abs_fake_prob_diff": float(delta_prob.max()), "mean_abs_fake_prob_diff": float(delta_prob.mean())}
