"""Why a face was flagged: occlusion sensitivity over the model's patch grid, for any backend.

Occlusion needs only a function `pixels (B x 3 x S x S) -> P(fake) (B,)`. The S x S input is cut into the
model's 14-px patch grid; a window of `window` x `window` patches slides over it by `stride` patches, and
each position gives one copy of the face with that window replaced by `fill`. All copies go through the
model as batches, so the cost is fixed and known in advance: 1 + (number of positions) forward passes
(`occlusion_passes`), 226 for a 224-px model with the defaults (16 x 16 grid, 2 x 2 window, stride 1).

A patch's score is the mean drop of P(fake) over the windows that cover it: positive where hiding the
region lowers P(fake), i.e. where the evidence for "fake" is. Fills: "blur" (a strong Gaussian blur of the
face: removes edges and fine texture, keeps the colors, so the mask itself adds no sharp boundary for the
frequency branch to react to) or "mean" (the dataset's mean color: zero after normalization).

A map shows only evidence that hiding a window removes. Excess detail (a sharpened, pasted face) is removed
by the blur and lights up where it is. Evidence that exists only by comparison (a face blurrier than, or
colored unlike, its surroundings) is not: a window of an evenly blurred face blurs to the same, and the
heat goes to the sharp surroundings the model compares against (measured: README, "Operating points and
explanations"; `python -m training.explanation_check --change ...`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_atomically
from .errors import ExplainError

FILLS = ("blur", "mean")
EXPLAIN_METHODS = ("occlusion", "gradcam", "gradcam-frequency")  # the last two: fmca_rt.gradcam, torch only



def window_starts(grid: int, window: int, stride: int) -> list[int]:
    """Window start positions along one axis; the last window always reaches the grid's edge. A stride
    longer than the window would leave patches that no window covers (no score: a blank map)."""
    if not (1 <= window <= grid and 1 <= stride <= window):
        raise ExplainError(f"An occlusion window of {window} patches with stride {stride} does not fit a "
                           f"{grid}-patch grid; use 1 <= window <= {grid} and 1 <= stride <= window.")
    starts = list(range(0, grid - window + 1, stride))
    if starts[-1] != grid - window:
        starts.append(grid - window)
    return starts


def occlusion_passes(image_size: int, patch_size: int = 14, window: int = 2, stride: int = 1) -> int:
    """The number of forward passes one occlusion map costs: the unmasked face plus one per window."""
    return 1 + len(window_starts(image_size // patch_size, window, stride)) ** 2


def _fill_image(pixels: np.ndarray, fill: str, sigma: float) -> np.ndarray:
    if fill == "mean":
        return np.zeros_like(pixels)
    if fill == "blur":
        blurred = cv2.GaussianBlur(np.ascontiguousarray(pixels.transpose(1, 2, 0)), (0, 0), sigmaX=sigma,
                                   borderType=cv2.BORDER_REFLECT)
        return blurred.transpose(2, 0, 1).astype(pixels.dtype)
    raise ExplainError(f"Unknown occlusion fill {fill!r}; choose one of: {', '.join(FILLS)}.")


def occlusion_map(predict_fake: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, patch_size: int = 14,
                  window: int = 2, stride: int = 1, fill: str = "blur",
                  batch_size: int = 32) -> tuple[np.ndarray, float, int]:
    """(patch scores grid x grid, P(fake) of the unmasked face, forward passes) for one face (3 x S x S)."""
    if pixels.ndim != 3 or pixels.shape[0] != 3 or pixels.shape[1] != pixels.shape[2] \
            or pixels.shape[1] % patch_size:
        raise ExplainError(f"Expected one normalized 3 x S x S face with S a multiple of {patch_size}, "
                           f"got shape {pixels.shape}.")
    pixels = pixels.astype(np.float32, copy=False)
    grid = pixels.shape[1] // patch_size
    starts = [(r, c) for r in window_starts(grid, window, stride) for c in window_starts(grid, window, stride)]
    filler = _fill_image(pixels, fill, sigma=patch_size * window / 2)
    drops = np.zeros((grid, grid), np.float64)
    cover = np.zeros((grid, grid), np.float64)
    base = float(np.asarray(predict_fake(pixels[None]))[0])
    span = window * patch_size
    for first in range(0, len(starts), batch_size):
        chunk = starts[first:first + batch_size]
        batch = np.repeat(pixels[None], len(chunk), axis=0)
        for copy, (row, col) in zip(batch, chunk):
            y, x = row * patch_size, col * patch_size
            copy[:, y:y + span, x:x + span] = filler[:, y:y + span, x:x + span]
        masked = np.asarray(predict_fake(batch), dtype=np.float64).reshape(len(chunk))
        for (row, col), probability in zip(chunk, masked):
            drops[row:row + window, col:col + window] += base - probability
            cover[row:row + window, col:col + window] += 1
    return (drops / cover).astype(np.float32), base, 1 + len(starts)


def denormalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalized 3 x S x S face back to S x S x 3 RGB uint8 (what the model saw)."""
    rgb = pixels.transpose(1, 2, 0) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Explanation:
    """A heat map over the face the model saw: how much each patch raised P(fake)."""

    crop_rgb: np.ndarray  # S x S x 3 uint8
    patch_scores: np.ndarray  # grid x grid float32; > 0 where the region raised P(fake)
    method: str  # one of EXPLAIN_METHODS
    fake_probability: float
    forward_passes: int

    @property
    def heatmap(self) -> np.ndarray:
        """Patch scores at pixel resolution (each patch's score over its pixels), S x S float32."""
        size = self.crop_rgb.shape[0]
        repeat = size // self.patch_scores.shape[0]
        return np.kron(self.patch_scores, np.ones((repeat, repeat), np.float32))

    def mass_inside(self, region: np.ndarray) -> float:
        """Share of the positive heat that falls where `region` (S x S, weights in [0, 1]) is set."""
        positive = np.clip(self.heatmap, 0, None)
        total = positive.sum()
        return float((positive * region).sum() / total) if total > 0 else float("nan")

    def overlay(self, alpha: float = 0.55) -> np.ndarray:
        """The face with the positive heat in color (S x S x 3 RGB uint8); regions that lowered P(fake) stay plain."""
        size = self.crop_rgb.shape[0]
        positive = np.clip(self.patch_scores, 0, None)
        peak = positive.max()
        level = positive / peak if peak > 0 else positive
        level = np.clip(cv2.resize(level, (size, size), interpolation=cv2.INTER_CUBIC), 0, 1)
        colored = cv2.cvtColor(cv2.applyColorMap(np.uint8(level * 255), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        weight = (alpha * level)[..., None]
        return np.uint8(self.crop_rgb * (1 - weight) + colored * weight + 0.5)

    def render(self) -> np.ndarray:
        """Face and overlay side by side with a caption, as RGB uint8, for saving or display."""
        size = self.crop_rgb.shape[0]
        caption = np.full((28, 2 * size, 3), 255, np.uint8)
        text = f"P(fake) {self.fake_probability:.3f}  {self.method}, {self.forward_passes} passes"
        cv2.putText(caption, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return np.vstack([np.hstack([self.crop_rgb, self.overlay()]), caption])

    def save(self, path: str | os.PathLike) -> Path:
        """Write `render()` as a PNG, atomically (a failed write never leaves a half-written file)."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ExplainError(f"Explanations are written as PNG; {path.name} does not end in .png.")
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(self.render(), cv2.COLOR_RGB2BGR))
        if not ok:
            raise ExplainError(f"Could not encode the explanation for {path}.")
        return write_atomically(path, encoded.tobytes(), ExplainError)


def explain_occlusion(predict_fake: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray,
                      mean: Sequence[float], std: Sequence[float], patch_size: int = 14, window: int = 2,
                      stride: int = 1, fill: str = "blur", batch_size: int = 32) -> Explanation:
    """Occlusion explanation of one normalized face (3 x S x S) given `pixels -> P(fake)`."""
    scores, base, passes = occlusion_map(predict_fake, pixels, patch_size, window, stride, fill, batch_size)
    return Explanation(denormalize(pixels, mean, std), scores, "occlusion", base, passes)
