"""FMCA-Net: DINOv2 spatial branch + FTMA, Haar-DWT frequency branch, SFCM cross attention, fused head."""

from __future__ import annotations

from os import PathLike

import torch
from torch import nn

from . import ops
from .config import FMCAConfig, get_preset
from .frequency import FrequencyBranch, HaarDWT
from .ftma import FTMA
from .sfcm import SFCM
from .vit import DinoV2Backbone


class FMCANet(nn.Module):
    """Maps normalized RGB images (B x 3 x S x S) to class logits (B x 2: real, fake).

    Submodule and parameter names are those of the published model, so state dicts move both ways.
    """

    def __init__(self, config: FMCAConfig | None = None):
        super().__init__()
        self.config = config = config or FMCAConfig()
        # Temperature and named operating points (fmca_rt.operating_points.Calibration.to_dict()) set by
        # `python -m training.calibrate`; saved in the checkpoint and exported into the ONNX metadata.
        self.calibration: dict | None = None
        self.kernels_enabled = False  # see use_kernels
        dim = config.embed_dim
        self.se_alpha = nn.Parameter(torch.tensor(0.5))
        self.vit = DinoV2Backbone(config)
        self.token_se = FTMA(config)
        self.dwt = HaarDWT(config.mean, config.std)
        self.freq_branch = FrequencyBranch(config)
        self.cross_attention = SFCM(config)
        self.freq_proj = nn.Linear(dim, config.freq_feature_dim)
        if config.frequency_gate:
            self.freq_gate = nn.Parameter(torch.tensor(0.0))
        self.fuse_head = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(dim + config.freq_feature_dim, config.head_hidden_dim), nn.GELU(),
            nn.Dropout(0.4), nn.Linear(config.head_hidden_dim, config.num_classes))

    def forward_intermediates(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, named like the reference test data (`dwt`, `vit_cls`, ..., `logits`)."""
        if self.kernels_enabled and pixels.is_cuda and ops.active_implementation() == "reference":
            with ops.implementation("triton"):
                return self.forward_intermediates(pixels)
        vit_cls, vit_patch = self.vit(pixels)
        ftma_out = self.token_se(vit_patch)
        dwt = self.dwt(pixels)
        freq_tokens = self.freq_branch(dwt)
        sfcm_patch, sfcm_freq = self.cross_attention(ftma_out, freq_tokens)
        spatial = vit_cls + torch.sigmoid(self.se_alpha) * sfcm_patch.mean(dim=1)
        frequency = self.freq_proj(sfcm_freq.mean(dim=1))
        if self.config.frequency_gate:
            frequency = torch.sigmoid(self.freq_gate) * frequency
        logits = self.fuse_head(torch.cat([spatial, frequency], dim=1))
        return {"dwt": dwt, "vit_cls": vit_cls, "vit_patch": vit_patch, "ftma_out": ftma_out,
                "freq_tokens": freq_tokens, "sfcm_patch": sfcm_patch, "sfcm_freq": sfcm_freq, "logits": logits}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(pixels)["logits"]

    def use_kernels(self, enabled: bool = True) -> "FMCANet":
        """Compute the DWT and the SFCM attention with the Triton kernels (package `kernels`) on CUDA inputs.

        CPU inputs keep the PyTorch reference, and a scope chosen with `training.ops.implementation` wins.
        """
        self.kernels_enabled = enabled
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.vit.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        backbone = {id(p) for p in self.vit.parameters()}
        return [p for p in self.parameters() if id(p) not in backbone]

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "FMCANet":
        """A freshly initialized model of a named preset (`b14`, `s14`, `tiny`), fields optionally overridden."""
        return cls(get_preset(name).replace(**overrides))

    @classmethod
    def from_checkpoint(cls, path: str | PathLike, map_location: str | torch.device = "cpu") -> "FMCANet":
        """Load this project's checkpoint or one saved by the published training script; eval mode."""
        from .checkpoint import load_model

        return load_model(path, map_location=map_location)

    def save_checkpoint(self, path: str | PathLike, **extra) -> None:
        """Write this project's checkpoint format atomically; `extra` adds fields such as `epoch`."""
        from .checkpoint import save_model

        save_model(self, path, **extra)

    def load_backbone(self, path: str | PathLike) -> None:
        """Load an official DINOv2 checkpoint file (e.g. `dinov2_vitb14_pretrain.pth`) into the backbone."""
        from .checkpoint import load_dinov2_backbone

        load_dinov2_backbone(self, path)
