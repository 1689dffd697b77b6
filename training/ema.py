"""Exponential moving average of a model's weights and buffers; validation and deployment use it."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """ema = d * ema + (1 - d) * weights after every optimizer step, for every floating-point tensor of the
    state dict (parameters and buffers such as BatchNorm statistics); integer buffers are copied.

    With `warmup`, the decay of update n (0-based) is min(decay, (1 + n) / (10 + n)), so early averages are
    not dominated by the random initialization (short runs); without it, d = decay throughout, as in the
    paper's recipe.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}.")
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1 + self.updates) / (10 + self.updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        model_state = model.state_dict()
        for name, average in self.module.state_dict().items():
            current = model_state[name].detach()
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(current.to(average.dtype), alpha=1.0 - decay)
            else:
                average.copy_(current)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
