"""fmca-rt: deploy FMCA-Net face-forgery detection on Jetson, desktop NVIDIA GPUs and CPUs."""

from ._version import __version__
from .errors import CheckpointError, ConfigError, DependencyError, FMCAError

__all__ = sorted(["CheckpointError", "ConfigError", "DependencyError", "FMCAError", "__version__"])
