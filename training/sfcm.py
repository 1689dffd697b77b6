"""SFCM: bidirectional cross attention between patch tokens and frequency tokens (keys `cross_attention.*`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import FMCAConfig


def token_major_empty(like: torch.Tensor, tokens: int, **overrides) -> torch.Tensor:
    """An uninitialized B x heads x N x D tensor (B, heads, D and dtype of `like`) laid out B x N x heads x D:
    the attention kernel's output layout, in which `SFCM._merge_heads` is a view, not a copy."""
    batch, heads, _, head_dim = like.shape
    options = {"dtype": like.dtype, "device": like.device, **overrides}
    return torch.empty(batch, tokens, heads, head_dim, **options).transpose(1, 2)


def sfcm_attention_reference(qp: torch.Tensor, kf: torch.Tensor, vf: torch.Tensor,
                             qf: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor,
                             scale: float | None = None, dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Both attention directions on B x heads x N x D tensors: (softmax(qp kf^T s) vf, softmax(qf kp^T s) vp)."""
    scale = 1.0 / math.sqrt(qp.shape[-1]) if scale is None else scale
    patch_to_freq = F.scaled_dot_product_attention(qp, kf, vf, dropout_p=dropout_p, scale=scale)
    freq_to_patch = F.scaled_dot_product_attention(qf, kp, vp, dropout_p=dropout_p, scale=scale)
    return patch_to_freq, freq_to_patch


def sfcm_attention_token_major(qp: torch.Tensor, kf: torch.Tensor, vf: torch.Tensor, qf: torch.Tensor,
                               kp: torch.Tensor, vp: torch.Tensor, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`sfcm_attention_reference` on B x N x heads x D tensors (the projections reshaped, no transposes),
    returning B x N x heads x D: the contract of the attention kernel's TensorRT plugin."""
    outputs = sfcm_attention_reference(*(t.transpose(1, 2) for t in (qp, kf, vf, qf, kp, vp)), scale)
    return tuple(o.transpose(1, 2).contiguous() for o in outputs)


class SFCM(nn.Module):
    def __init__(self, config: FMCAConfig, attention_dropout: float = 0.1):
        super().__init__()
        dim = config.embed_dim
        self.num_heads = config.sfcm_heads
        self.attention_dropout = attention_dropout
        for name in ("patch_q_proj", "freq_k_proj", "freq_v_proj", "freq_q_proj", "patch_k_proj", "patch_v_proj"):
            setattr(self, name, nn.Linear(dim, dim, bias=False))
        self.patch_out_proj = nn.Linear(dim, dim)
        self.freq_out_proj = nn.Linear(dim, dim)
        self.gamma_patch = nn.Parameter(torch.tensor(0.0))
        self.gamma_freq = nn.Parameter(torch.tensor(0.0))
        self.patch_norm = nn.LayerNorm(dim)
        self.freq_norm = nn.LayerNorm(dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.reshape(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)

    @staticmethod
    def _merge_heads(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).flatten(2)  # a view for token-major inputs (the kernels' outputs)

    def forward(self, patches: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from . import ops  # ops imports this module

        heads = [self._split_heads(proj(tokens)) for proj, tokens in (
            (self.patch_q_proj, patches), (self.freq_k_proj, freqs), (self.freq_v_proj, freqs),
            (self.freq_q_proj, freqs), (self.patch_k_proj, patches), (self.patch_v_proj, patches))]
        dropout_p = self.attention_dropout if self.training else 0.0
        patch_attended, freq_attended = ops.sfcm_attention(*heads, dropout_p=dropout_p)
        patch_attended = self.patch_out_proj(self._merge_heads(patch_attended))
        freq_attended = self.freq_out_proj(self._merge_heads(freq_attended))
        patches = self.patch_norm(patches + torch.sigmoid(self.gamma_patch) * patch_attended)
        freqs = self.freq_norm(freqs + torch.sigmoid(self.gamma_freq) * freq_attended)
        return patches, freqs
