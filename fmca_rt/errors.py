"""The package's exceptions. Every failure a user can cause is one of these, with a one-sentence message.

    FMCAError
     +-- BackendError         an inference backend cannot load its model or was given a wrong input
     +-- CalibrationError     an unknown operating point, or a stored calibration that cannot be read
     +-- CheckpointError      a checkpoint file is missing, unreadable, or not an FMCA-Net checkpoint
     +-- ConfigError          an unknown preset or an inconsistent model configuration
     +-- DataError            a dataset folder is missing, empty, or lacks a class (training, evaluation)
     +-- DependencyError      an optional library (torch, onnxruntime, tensorrt, ...) is not installed
     +-- DeviceError          no usable NVIDIA GPU (or CUDA driver) for a GPU-only feature
     +-- EngineError          a TensorRT engine cannot be built, loaded, or does not fit this machine
     +-- ExplainError         an explanation cannot be computed for this backend or input, or not written
     +-- ExportError          an ONNX export, its parity check or its quantization failed
     +-- FaceDetectorError    a face detector cannot be created (unknown name, missing model file)
     +-- ImageError           an input image or face crop cannot be read or used
     +-- OutputError          a result file, video or window cannot be written or opened
     +-- RunError             a video run failed midway; its summary says what was analysed and written
     +-- ServeError           a Triton server cannot be started or reached, or refused a request
     +-- SourceError          a video source cannot be named, found or opened
"""


class FMCAError(Exception):
    """Base class of every error raised by fmca-rt."""


class CheckpointError(FMCAError):
    """A checkpoint cannot be read or does not fit the model."""


class CalibrationError(FMCAError):
    """An operating point is unknown to the model, or a stored calibration is unreadable."""


class ConfigError(FMCAError):
    """A model configuration or preset name is invalid."""


class DataError(FMCAError):
    """A dataset folder is missing, holds no usable images, or lacks one of the classes."""


class DependencyError(FMCAError, ImportError):
    """An optional dependency needed for the requested feature is missing."""


class DeviceError(FMCAError):
    """A GPU-only feature was asked for where no usable NVIDIA GPU or CUDA driver is present."""


class EngineError(FMCAError):
    """A TensorRT engine cannot be built or loaded, or was built for another TensorRT version or GPU."""


class ExplainError(FMCAError):
    """An explanation cannot be computed (method, backend or settings) or its image cannot be written."""


class ExportError(FMCAError):
    """An ONNX export cannot be written, does not match PyTorch, or cannot be quantized."""


class BackendError(FMCAError):
    """An inference backend cannot load its model, or was used wrongly (inactive, wrong input)."""


class FaceDetectorError(FMCAError):
    """A face detector cannot be created (unknown name, missing or unreadable model file)."""


class ImageError(FMCAError):
    """An input image or face crop cannot be read, or is not an image the detector can use."""


class OutputError(FMCAError):
    """A result file, annotated video or display window cannot be written or opened."""


class RunError(FMCAError):
    """A video run failed midway (the backend raised, an output could not be written); `run.summary` has
    status "failed", the error, and what was analysed and written."""


class ServeError(FMCAError):
    """A Triton server cannot be started, configured or reached, or refused a request."""


class SourceError(FMCAError):
    """A video source cannot be named, found or opened."""


def describe_failure(error: BaseException) -> str:
    """One line for an exception: the package's own sentence, or the type and first line of another's."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, FMCAError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
