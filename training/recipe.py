"""The training recipe: hyper-parameters, the two-group AdamW optimizer and the learning-rate schedule.

`paper` is the published recipe (reference README): focal loss alpha 0.6 / gamma 2, AdamW with the DINOv2
backbone at lr 6e-6 and weight decay 0.05 and everything else at lr 6e-5 without weight decay, linear warm-up
over the first 10% of steps then cosine decay to 0, gradient clipping at norm 1, EMA decay 0.999, batch 16.
Its small rates assume a pretrained backbone (`--backbone-weights`). `scratch` is for a model trained from
random weights (the `tiny` preset, which has no pretrained backbone): the same recipe with rates fit for
training from scratch and horizontal flips as the only augmentation (training.augment).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from fmca_rt.errors import ConfigError

from .model import FMCANet


@dataclass(frozen=True)
class Recipe:
    backbone_lr: float = 6e-6
    backbone_weight_decay: float = 0.05
    head_lr: float = 6e-5
    head_weight_decay: float = 0.0
    warmup_fraction: float = 0.1
    clip_grad_norm: float = 1.0
    ema_decay: float = 0.999
    focal_alpha: float = 0.6
    focal_gamma: float = 2.0
    batch_size: int = 16
    augment: str = "paper"  # a name in training.augment.AUGMENTATIONS

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(),
    "scratch": Recipe(backbone_lr=1e-3, head_lr=1e-3, backbone_weight_decay=0.05, head_weight_decay=0.05,
                      augment="light"),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"Unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPES))}.") from None


def build_optimizer(model: FMCANet, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with two parameter groups: the backbone (`vit.*`) and everything else."""
    groups = [
        {"name": "backbone", "params": model.backbone_parameters(), "lr": recipe.backbone_lr,
         "weight_decay": recipe.backbone_weight_decay},
        {"name": "head", "params": model.head_parameters(), "lr": recipe.head_lr,
         "weight_decay": recipe.head_weight_decay},
    ]
    return torch.optim.AdamW(groups)


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    return max(1, round(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0


def warmup_cosine_factor(step: int, total_steps: int, warmup_fraction: float = 0.1) -> float:
    """Multiplier of the base learning rate for optimizer step `step` (0-based) of `total_steps`.

    Linear warm-up: (step + 1) / W for the first W = round(fraction * total) steps (at least one), so the
    first step already moves; then cosine from 1 at step W down to 0 at step `total_steps`.
    """
    warm = warmup_steps(total_steps, warmup_fraction)
    if step < warm:
        return (step + 1) / warm
    remaining = max(1, total_steps - warm)
    progress = min(1.0, (step - warm) / remaining)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per optimizer step; its state (the step count) is saved with checkpoints for --resume."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_fraction))
