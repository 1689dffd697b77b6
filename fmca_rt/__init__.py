"""fmca-rt: deploy FMCA-Net face-forgery detection on Jetson, desktop NVIDIA GPUs and CPUs."""

from ._version import __version__
from .detector import Detector
from .errors import CheckpointError, ConfigError, DependencyError, FMCAError
from .faces import Face, FaceDetector, HaarFaceDetector, YuNetFaceDetector
from .results import FaceResult, ImageResult

__all__ = sorted(["CheckpointError", "ConfigError", "DependencyError", "Detector", "FMCAError", "Face", "FaceDetector",
                  "FaceResult", "HaarFaceDetector", "ImageResult", "YuNetFaceDetector", "__version__"])
