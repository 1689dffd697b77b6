"""Focal loss over the 2-class softmax, as in the paper's recipe (alpha 0.6, gamma 2.0)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.6, gamma: float = 2.0,
               reduction: str = "mean") -> torch.Tensor:
    """-alpha_t (1 - p_t)^gamma log p_t, with alpha_t = alpha for class 0 (real) and 1 - alpha for class 1.

    p_t is the softmax probability of the target class; the loss is computed in float32 from log-softmax
    so that confident predictions under mixed precision neither underflow nor produce NaNs.
    """
    log_probs = F.log_softmax(logits.float(), dim=1)
    log_pt = log_probs.gather(1, targets.long()[:, None]).squeeze(1)
    pt = log_pt.exp()
    alpha_t = torch.where(targets == 0, alpha, 1.0 - alpha).to(log_pt.dtype)
    losses = -alpha_t * (1.0 - pt).pow(gamma) * log_pt
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"Unknown reduction {reduction!r}; use 'mean', 'sum' or 'none'.")


class FocalLoss(nn.Module):
    def __init__(self, alpha: float = 0.6, gamma: float = 2.0):
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.alpha, self.gamma)
