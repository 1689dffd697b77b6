"""FMCA-Net architecture configuration and the registry of named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from fmca_rt.errors import ConfigError
from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD

# The frequency CNN's strides are fixed by the published architecture; only its widths vary.
FREQ_CNN_STRIDES = (1, 2, 1, 2, 1)


@dataclass(frozen=True)
class FMCAConfig:
    """Everything needed to rebuild an FMCA-Net exactly; stored inside checkpoints and ONNX metadata."""

    image_size: int = 224
    patch_size: int = 14
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden_dim: int = 3072
    # Side of the square grid the backbone's position embedding was trained on (DINOv2: 518 px / 14 = 37).
    pos_embed_grid: int = 37
    ftma_widths: tuple[int, int] = (192, 384)
    freq_channels: tuple[int, ...] = (64, 128, 256, 256, 128)
    sfcm_heads: int = 8
    freq_feature_dim: int = 256
    head_hidden_dim: int = 256
    num_classes: int = 2
    # The paper's GSFC gate sigmoid(gamma) on the frequency feature; the published code has none.
    frequency_gate: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: tuple[str, ...] = field(default=("real", "fake"))
    # How face crops are resized to image_size (a name in fmca_rt.preprocess). The published script used
    # torchvision's Resize on PIL images: antialiased bilinear on uint8.
    preprocessing: str = "pil-bilinear"

    def __post_init__(self) -> None:
        problems = []
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.image_size % 8:
            problems.append(f"image_size {self.image_size} is not a multiple of 8 (the frequency branch halves it 3 times)")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.embed_dim % self.sfcm_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by sfcm_heads {self.sfcm_heads}")
        if len(self.freq_channels) != len(FREQ_CNN_STRIDES):
            problems.append(f"freq_channels needs {len(FREQ_CNN_STRIDES)} widths, got {len(self.freq_channels)}")
        if len(self.class_names) != self.num_classes:
            problems.append(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if problems:
            raise ConfigError("Invalid FMCA-Net configuration: " + "; ".join(problems) + ".")

    @property
    def grid_size(self) -> int:
        """Patch tokens per side; also the side of the frequency token grid."""
        return self.image_size // self.patch_size

    @property
    def freq_map_size(self) -> int:
        """Side of the frequency CNN's output map before pooling to the token grid."""
        return self.image_size // 8

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "FMCAConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown FMCA-Net configuration fields: {', '.join(unknown)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def replace(self, **changes) -> "FMCAConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, FMCAConfig] = {
    # The paper's model: DINOv2 ViT-B/14 at 224 px.
    "b14": FMCAConfig(),
    # DINOv2 ViT-S/14 backbone; the heads keep the paper's proportions (FTMA widths w/4 and w/2,
    # SFCM heads of 96 channels, a frequency feature of a third of the width).
    "s14": FMCAConfig(embed_dim=384, num_heads=6, mlp_hidden_dim=1536, ftma_widths=(96, 192),
                      sfcm_heads=4, freq_feature_dim=128, head_hidden_dim=128),
    # A very small model for tests and demos that trains in minutes on two CPU cores.
    "tiny": FMCAConfig(embed_dim=96, depth=2, num_heads=3, mlp_hidden_dim=384, pos_embed_grid=16,
                       ftma_widths=(24, 48), freq_channels=(16, 32, 64, 64, 32), sfcm_heads=3,
                       freq_feature_dim=32, head_hidden_dim=64),
}


def get_preset(name: str) -> FMCAConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"Unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}.") from None
