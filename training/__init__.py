"""Training-side PyTorch code: the FMCA-Net model, its configuration presets and checkpoints."""

from .checkpoint import load_dinov2_backbone
from .config import PRESETS, FMCAConfig, get_preset
from .model import FMCANet

__all__ = sorted(["FMCAConfig", "FMCANet", "PRESETS", "get_preset", "load_dinov2_backbone"])
