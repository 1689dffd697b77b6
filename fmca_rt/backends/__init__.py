"""Inference backends, by name; each is imported only when used (see base.py for the interface)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import BackendError
from .base import Backend

# name -> (module, class); a new backend is one line here and a module with a Backend subclass.
BACKENDS = {
    "cpu": ("fmca_rt.backends.cpu_mode", "CpuBackend"),  # the CPU mode: the fastest accurate INT8 form
    "onnxruntime": ("fmca_rt.backends.onnxruntime", "OnnxRuntimeBackend"),
    "openvino": ("fmca_rt.backends.openvino", "OpenVinoBackend"),  # OpenVINO on the CPU, .onnx or IR .xml
    "tensorrt": ("fmca_rt.backends.tensorrt", "TensorRTBackend"),
    "torch": ("fmca_rt.backends.torch", "TorchBackend"),
}
# What "auto" picks for each model file type.
BACKEND_FOR_SUFFIX = {".engine": "tensorrt", ".plan": "tensorrt", ".onnx": "onnxruntime", ".xml": "openvino",
                      ".pth": "torch", ".pt": "torch"}


def backend_class(name: str) -> type[Backend]:
    try:
        module_name, class_name = BACKENDS[name]
    except KeyError:
        raise BackendError(f"Unknown backend {name!r}; choose one of: auto, {', '.join(sorted(BACKENDS))}.") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise BackendError(f"The {name} backend is not part of this fmca-rt installation.") from None
    return getattr(module, class_name)


def create_backend(model_path: str | Path, backend: str = "auto", device: str | None = None) -> Backend:
    """The backend object for a model file (not yet activated)."""
    model_path = Path(model_path)
    if backend == "auto":
        try:
            backend = BACKEND_FOR_SUFFIX[model_path.suffix.lower()]
        except KeyError:
            raise BackendError(f"Cannot tell the backend for {model_path.name}: expected a .engine, .onnx, .xml "
                               "(OpenVINO) or .pth model, or pass backend=... explicitly.") from None
    return backend_class(backend)(model_path, device=device)


__all__ = sorted(["BACKENDS", "BACKEND_FOR_SUFFIX", "Backend", "BackendError", "backend_class", "create_backend"])
