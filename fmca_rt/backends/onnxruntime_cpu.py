"""ONNX Runtime tuned for the CPU: one of the forms the CPU mode (cpu_mode.py) chooses from.

`OnnxRuntimeInt8Backend` runs the INT8 form of the model (see cpu_int8.py for what is quantized and why), with
every graph optimization on and one compute thread per usable core. A float32 ONNX file is quantized on first
use and cached; an already quantized file (metadata precision other than float32, e.g. `python -m export.onnx
--int8`) runs as is. `OnnxRuntimeCpuFloatBackend` is the same session on the float32 model: the CPU mode's
fallback when no INT8 form keeps the accuracy bound.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DependencyError
from ..metadata import ModelMetadata
from .base import BackendError
from .cpu_int8 import cached_int8_model
from .onnxruntime import OnnxRuntimeBackend


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a container's CPU set, not the host's core count
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_onnx_metadata(model_path: Path) -> ModelMetadata:
    try:
        import onnx
    except ImportError:
        raise DependencyError("The cpu backend reads the model's metadata with 'onnx', which is not installed: "
                              "pip install 'fmca-rt[cpu]'.") from None
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise BackendError(f"{model_path} is not a readable ONNX model.") from None
    props = {p.key: p.value for p in model.metadata_props}
    return ModelMetadata.from_onnx_props(props, str(model_path))


def is_quantized(model_path: Path) -> bool:
    return read_onnx_metadata(model_path).extra.get("precision", "float32") != "float32"


def check_onnx_for_cpu(model_path: Path) -> None:
    if model_path.suffix.lower() != ".onnx":
        raise BackendError(f"The cpu backend runs ONNX models; export {model_path.name} first with "
                           "`python -m export.onnx`.")


class OnnxRuntimeCpuFloatBackend(OnnxRuntimeBackend):
    """ONNX Runtime on the CPU with every graph optimization and `threads` compute threads (default: the cores
    this process may use), on the model as given."""

    name = "onnxruntime-cpu"

    def __init__(self, model_path, device: str | None = None, threads: int | None = None):
        if device not in (None, "cpu"):
            raise BackendError(f"The cpu backend runs on the CPU only, not on device {device!r}.")
        super().__init__(model_path, device="cpu")
        self.threads = threads

    def session_model_path(self) -> Path:
        check_onnx_for_cpu(self.model_path)
        return self.model_path

    def session_options(self, ort):
        options = super().session_options(ort)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads or usable_cores()
        options.inter_op_num_threads = 1
        return options

    def describe_impl(self) -> str:
        return f"ONNX Runtime float32, {self.threads or usable_cores()} threads"


class OnnxRuntimeInt8Backend(OnnxRuntimeCpuFloatBackend):
    """The same session on the model's INT8 form; `cache_dir` holds the INT8 forms of float32 models (default
    ~/.cache/fmca-rt/cpu)."""

    name = "onnxruntime-int8"

    def __init__(self, model_path, device: str | None = None, threads: int | None = None, cache_dir=None):
        super().__init__(model_path, device=device, threads=threads)
        self.cache_dir = cache_dir
        self.int8_path: Path | None = None

    def session_model_path(self) -> Path:
        check_onnx_for_cpu(self.model_path)
        self.int8_path = self.model_path if is_quantized(self.model_path) else \
            cached_int8_model(self.model_path, self.cache_dir)
        return self.int8_path

    def describe_impl(self) -> str:
        return f"ONNX Runtime INT8, {self.threads or usable_cores()} threads"
