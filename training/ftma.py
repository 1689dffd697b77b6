"""FTMA: multi-scale token attention that reweights the patch tokens' channels (keys `token_se.*`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FMCAConfig


def _mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))


class FTMA(nn.Module):
    def __init__(self, config: FMCAConfig):
        super().__init__()
        dim = config.embed_dim
        width1, width2 = config.ftma_widths
        self.norm = nn.LayerNorm(dim)
        # Kernel-1 Conv1d layers over the token axis, i.e. per-token linear maps; kept as Conv1d so the
        # parameters have the published shapes.
        self.scale1_conv = nn.Conv1d(dim, width1, kernel_size=1)
        self.scale1_mlp = _mlp(width1)
        self.scale2_conv = nn.Conv1d(dim, width2, kernel_size=1)
        self.scale2_mlp = _mlp(width2)
        self.scale3_mlp = _mlp(dim)
        self.projection = nn.Linear(width1 + width2 + dim, dim)
        self.alpha = nn.Parameter(torch.tensor(0.5))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        normed = self.norm(patches)
        scale1 = self.scale1_mlp(F.linear(normed, self.scale1_conv.weight.squeeze(-1), self.scale1_conv.bias))
        scale2 = self.scale2_mlp(F.linear(normed, self.scale2_conv.weight.squeeze(-1), self.scale2_conv.bias))
        scale3 = self.scale3_mlp(normed)
        mixed = self.projection(torch.cat([scale1, scale2, scale3], dim=-1))
        weights = torch.sigmoid(mixed.mean(dim=1, keepdim=True))
        return patches + self.alpha * (patches * weights - patches)
