"""PyTorch datasets over the on-disk layout: decoding, the shared preprocessing, augmentation, self-blending.

Every image goes through `fmca_rt.preprocess` (resize, normalize): the function the runtime SDK uses, so
training and deployment see identical inputs. Randomness (augmentation, self-blending) is drawn from a
Generator seeded with (seed, epoch, index): each sample is the same whatever the number of processes or
workers, and a resumed run continues exactly.

Unreadable images never stop an epoch. For training they are replaced by the next readable image (batches
keep their size, which distributed training needs); for evaluation they are left out. Either way each
sample reports the files it skipped, and the loops count and name them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fmca_rt.errors import DataError, ImageError
from fmca_rt.images import read_encoded
from fmca_rt.preprocess import preprocess, resize_rgb

from .augment import AugmentConfig, augment_rgb, random_erase
from .config import FMCAConfig
from .data import Sample
from .self_blend import self_blend

MAX_CONSECUTIVE_UNREADABLE = 100


def read_rgb(path) -> np.ndarray | None:
    """An image file as H x W x 3 uint8 RGB, or None when it cannot be read or decoded, or is larger than the
    runtime's pixel limit (read from its header: a decompression bomb is never decoded)."""
    try:
        bgr = cv2.imdecode(read_encoded(path), cv2.IMREAD_COLOR)
    except (ImageError, cv2.error):
        return None
    if bgr is None or bgr.size == 0:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Item:
    """One entry of a dataset: a file, and whether to turn it into a self-blended fake."""
    sample: Sample
    self_blended: bool = False

    @property
    def label(self) -> int:
        return 1 if self.self_blended else self.sample.label

    @property
    def method(self) -> str:
        return "SelfBlended" if self.self_blended else self.sample.method

    @property
    def video(self) -> str:
        return ("fake/self-blended-" + self.sample.video) if self.self_blended else self.sample.video


def self_blend_items(real_samples: list[Sample]) -> list[Item]:
    """Each real image twice: as itself (label 0) and as a self-blended fake of itself (label 1)."""
    return [Item(s) for s in real_samples] + [Item(s, self_blended=True) for s in real_samples]


class FaceCropDataset(Dataset):
    """Face crops -> (normalized 3 x S x S float32 tensor, label), with augmentation when `augment` is set.

    `on_unreadable`: "substitute" (training: use the next readable image) or "skip" (evaluation: return an
    item without pixels, dropped by `collate`).
    """

    def __init__(self, items: list[Item], config: FMCAConfig, augment: AugmentConfig | None = None,
                 seed: int = 0, on_unreadable: str = "substitute"):
        if not items:
            raise DataError("The dataset is empty.")
        if on_unreadable not in ("substitute", "skip"):
            raise ValueError(f"on_unreadable must be 'substitute' or 'skip', not {on_unreadable!r}.")
        self.items = items
        self.config = config
        self.augment = augment
        self.seed = seed
        self.on_unreadable = on_unreadable
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (before creating the iterator) so every epoch augments differently."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def labels(self) -> np.ndarray:
        return np.array([item.label for item in self.items], dtype=np.int64)

    def __getitem__(self, index: int) -> dict:
        unreadable = []
        for attempt in range(min(len(self.items), MAX_CONSECUTIVE_UNREADABLE)):
            position = (index + attempt) % len(self.items)
            rgb = self.read_image(position)
            if rgb is not None:
                break
            unreadable.append(str(self.items[position].sample.path))
            if self.on_unreadable == "skip":
                return {"pixels": None, "label": self.items[index].label, "index": index, "unreadable": unreadable}
        else:
            raise DataError(f"{len(unreadable)} images in a row cannot be read, starting at {unreadable[0]}; "
                            "the dataset looks corrupt.")
        item = self.items[position]
        pixels = self._pixels(rgb, item, np.random.default_rng([self.seed, self.epoch, index]))
        return {"pixels": torch.from_numpy(pixels), "label": item.label, "index": index, "unreadable": unreadable}

    def read_image(self, position: int) -> np.ndarray | None:
        """The item's image as RGB uint8, None when unreadable; subclasses may alter it (training.robustness)."""
        return read_rgb(self.items[position].sample.path)

    def _pixels(self, rgb: np.ndarray, item: Item, rng: np.random.Generator) -> np.ndarray:
        config = self.config
        rgb = resize_rgb(rgb, config.image_size, config.preprocessing)
        if item.self_blended:
            rgb, _ = self_blend(rgb, rng)
        if self.augment is not None:
            rgb = augment_rgb(rgb, rng, self.augment)
        pixels = preprocess([rgb], config.image_size, config.mean, config.std, config.preprocessing)[0]
        if self.augment is not None:
            random_erase(pixels, rng, self.augment)
        return pixels


def collate(batch: list[dict]) -> dict:
    """Stack the readable samples; carry the skipped files' paths along."""
    kept = [b for b in batch if b["pixels"] is not None]
    return {
        "pixels": torch.stack([b["pixels"] for b in kept]) if kept else None,
        "labels": torch.tensor([b["label"] for b in kept], dtype=torch.long),
        "indices": torch.tensor([b["index"] for b in kept], dtype=torch.long),
        "unreadable": [path for b in batch for path in b["unreadable"]],
    }
