"""The spatial branch: a DINOv2 ViT with the official parameter names (the checkpoint keys under `vit.`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FMCAConfig

DINOV2_LAYERNORM_EPS = 1e-6


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=DINOV2_LAYERNORM_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=DINOV2_LAYERNORM_EPS)
        self.mlp = Mlp(dim, mlp_hidden_dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def resize_position_embedding(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """DINOv2's resize of the trained position grid to `grid` x `grid` patches, bit for bit.

    DINOv2 interpolates with a scale factor of (grid + 0.1) / trained_grid, not a target size; the two
    give different sample positions, so the exact call is kept.
    """
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    trained_grid = round(patch_pos.shape[1] ** 0.5)
    if trained_grid == grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    scale = (grid + 0.1) / trained_grid
    patch_pos = patch_pos.float().reshape(1, trained_grid, trained_grid, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, scale_factor=(scale, scale), mode="bicubic",
                              antialias=False, align_corners=False)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat([cls_pos.float(), patch_pos], dim=1).to(pos_embed.dtype)


class DinoV2Backbone(nn.Module):
    """Returns the final-normed class token (B x C) and patch tokens (B x N x C)."""

    def __init__(self, config: FMCAConfig):
        super().__init__()
        dim = config.embed_dim
        self.grid_size = config.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.pos_embed_grid ** 2, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # kept for checkpoint compatibility; unused
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.blocks = nn.ModuleList(Block(dim, config.num_heads, config.mlp_hidden_dim) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=DINOV2_LAYERNORM_EPS)
        self._pos_cache: tuple[int, torch.Tensor] | None = None
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def position_embedding(self) -> torch.Tensor:
        """The position embedding at the model's grid: recomputed while training (it is trained), a cached
        constant in eval mode, refreshed when the parameter changes."""
        if self.training:
            return resize_position_embedding(self.pos_embed, self.grid_size)
        version = self.pos_embed._version
        if self._pos_cache is None or self._pos_cache[0] != version or \
                self._pos_cache[1].device != self.pos_embed.device:
            with torch.no_grad():
                self._pos_cache = (version, resize_position_embedding(self.pos_embed, self.grid_size))
        return self._pos_cache[1]

    def _apply(self, fn, *args, **kwargs):
        self._pos_cache = None  # .to()/.half() replace the parameter's storage
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding()
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 0], tokens[:, 1:]
