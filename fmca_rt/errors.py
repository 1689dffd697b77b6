"""The package's exceptions. Every failure a user can cause is one of these, with a one-sentence message.

    FMCAError
     +-- CheckpointError      a checkpoint file is missing, unreadable, or not an FMCA-Net checkpoint
     +-- ConfigError          an unknown preset or an inconsistent model configuration
     +-- DependencyError      an optional library (torch, onnxruntime, tensorrt, ...) is not installed
"""


class FMCAError(Exception):
    """Base class of every error raised by fmca-rt."""


class CheckpointError(FMCAError):
    """A checkpoint cannot be read or does not fit the model."""


class ConfigError(FMCAError):
    """A model configuration or preset name is invalid."""


class DependencyError(FMCAError, ImportError):
    """An optional dependency needed for the requested feature is missing."""
