"""Training-side PyTorch code: the FMCA-Net model, its configuration presets and checkpoints.

The names below are imported on first use, so that the modules that need only NumPy and OpenCV (the
self-blending and demo-data generators, which the runtime's CPU mode uses for its check crops) import
without PyTorch.
"""

import importlib

_LAZY = {"load_dinov2_backbone": ".checkpoint", "PRESETS": ".config", "FMCAConfig": ".config",
         "get_preset": ".config", "FMCANet": ".model"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


__all__ = sorted(_LAZY)
