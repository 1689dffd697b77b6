"""The frequency branch: un-normalize, single-level Haar DWT, a small CNN, and pooling to frequency tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import FREQ_CNN_STRIDES, FMCAConfig

# 2x2 Haar analysis filters on a block [[a, b], [c, d]]; stored in checkpoints as `dwt.*_filter` buffers.
HAAR_FILTERS = {
    "ll_filter": ((0.5, 0.5), (0.5, 0.5)),
    "lh_filter": ((0.5, -0.5), (0.5, -0.5)),
    "hl_filter": ((0.5, 0.5), (-0.5, -0.5)),
    "hh_filter": ((0.5, -0.5), (-0.5, 0.5)),
}


def haar_dwt_reference(x: torch.Tensor, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> torch.Tensor:
    """Un-normalize (`x * std + mean`, skipped when both are None), then the single-level Haar DWT.

    B x C x H x W -> B x 4C x ceil(H/2) x ceil(W/2), channels ordered (c, LL), (c, LH), (c, HL), (c, HH).
    Odd sizes are reflect-padded on the bottom/right. Computed in float32, returned in the input dtype.
    """
    dtype = x.dtype
    x = x.float()
    if mean is not None or std is not None:
        channels = x.shape[1]
        std_t = x.new_tensor(std if std is not None else (1.0,) * channels).view(1, -1, 1, 1)
        mean_t = x.new_tensor(mean if mean is not None else (0.0,) * channels).view(1, -1, 1, 1)
        x = x * std_t + mean_t
    pad_bottom, pad_right = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_bottom or pad_right:
        x = F.pad(x, (0, pad_right, 0, pad_bottom), mode="reflect")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    ll = (a + b + c + d) * 0.5
    lh = (a - b + c - d) * 0.5
    hl = (a + b - c - d) * 0.5
    hh = (a - b - c + d) * 0.5
    bands = torch.stack([ll, lh, hl, hh], dim=2)
    return bands.flatten(1, 2).to(dtype)


class HaarDWT(nn.Module):
    """Un-normalizes the model input and applies the Haar DWT; the filter buffers exist for the checkpoint."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)
        for name, taps in HAAR_FILTERS.items():
            self.register_buffer(name, torch.tensor(taps).view(1, 1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from . import ops  # ops imports this module

        return ops.haar_dwt(x, self.mean, self.std)


def adaptive_pool_matrix(in_size: int, out_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """out_size x in_size matrix whose product equals adaptive average pooling along one axis.

    PyTorch's adaptive windows are [floor(i*in/out), ceil((i+1)*in/out)): overlapping and not uniform,
    which no fixed-stride pooling reproduces; a matrix does, and exports as a plain MatMul.
    """
    matrix = torch.zeros(out_size, in_size, dtype=dtype)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class FrequencyBranch(nn.Module):
    """DWT map (B x 12 x H/2 x W/2) -> frequency tokens (B x grid^2 x embed_dim)."""

    def __init__(self, config: FMCAConfig):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 12
        for out_channels, stride in zip(config.freq_channels, FREQ_CNN_STRIDES):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
                       nn.BatchNorm2d(out_channels), nn.GELU()]
            in_channels = out_channels
        self.conv_layers = nn.Sequential(*layers)
        self.projection = nn.Linear(in_channels, config.embed_dim)
        pool = adaptive_pool_matrix(config.freq_map_size, config.grid_size)
        self.register_buffer("pool_rows", pool, persistent=False)
        self.register_buffer("pool_cols_t", pool.t().contiguous(), persistent=False)

    def forward(self, dwt_map: torch.Tensor) -> torch.Tensor:
        features = self.conv_layers(dwt_map)
        pooled = self.pool_rows.to(features.dtype) @ features @ self.pool_cols_t.to(features.dtype)
        return self.projection(pooled.flatten(2).transpose(1, 2))
