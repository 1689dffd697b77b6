"""OpenVINO backend: `Detector("fmca.onnx", backend="openvino")`, or an OpenVINO IR (`.xml`, e.g. the INT8 form
NNCF writes, openvino_int8.py). CPU only. Model facts come from the fmca-rt metadata, which OpenVINO keeps in
the model's runtime info (`framework/fmca_rt`) when it reads an ONNX file and when it saves an IR.

`precision` is OpenVINO's inference-precision hint for the operations that are not already INT8: "f32", or
"bf16" on CPUs with bfloat16 arithmetic. It is always set: OpenVINO's own default on such CPUs is bfloat16,
which a user asking for the float32 model would not expect.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendError, DependencyError
from ..metadata import METADATA_KEY, MetadataError, ModelMetadata
from .base import Backend
from .onnxruntime_cpu import usable_cores

OPENVINO_HINT = "pip install 'fmca-rt[openvino]'"
PRECISIONS = {"f32": "float32", "bf16": "bfloat16"}
METADATA_PATH = ["framework", METADATA_KEY]  # where OpenVINO puts an ONNX file's metadata_props entry


def first_line(error: Exception) -> str:
    """The first line of an engine's error message (OpenVINO and NNCF append long traces), or its type."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise DependencyError(f"The openvino backend needs OpenVINO, but 'openvino' is not installed: "
                              f"{OPENVINO_HINT}.") from None
    return openvino


def cpu_has_bfloat16(core) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def read_metadata(model, source: str) -> ModelMetadata:
    """The fmca-rt metadata of an OpenVINO model read from an exported ONNX file or an IR saved from one."""
    if not model.has_rt_info(METADATA_PATH):
        raise MetadataError(f"{source} has no fmca-rt metadata; export it with `python -m export.onnx`.")
    return ModelMetadata.from_json(model.get_rt_info(METADATA_PATH).astype(str), source)


def write_metadata(model, metadata: ModelMetadata) -> None:
    model.set_rt_info(metadata.to_json(), METADATA_PATH)


def read_model(core, path) -> object:
    try:
        return core.read_model(str(path))
    except RuntimeError as error:  # OpenVINO reports unreadable files as RuntimeError with a long trace
        raise BackendError(f"OpenVINO cannot read {path}: {first_line(error)}") from None


class OpenVinoBackend(Backend):
    """OpenVINO on the CPU, latency-tuned: one stream, `threads` (default: the usable cores) compute threads."""

    name = "openvino"

    def __init__(self, model_path, device: str | None = None, precision: str = "f32", threads: int | None = None):
        if device not in (None, "cpu"):
            raise BackendError(f"The openvino backend runs on the CPU only, not on device {device!r}.")
        if precision not in PRECISIONS:
            raise BackendError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
        super().__init__(model_path, device="cpu")
        self.precision, self.threads = precision, threads

    def activate_impl(self) -> ModelMetadata:
        ov = import_openvino()
        core = ov.Core()
        if self.precision == "bf16" and not cpu_has_bfloat16(core):
            raise BackendError("This CPU has no bfloat16 arithmetic (OpenVINO lists no BF16 capability); "
                               "use precision='f32'.")
        model = read_model(core, self.model_path)
        metadata = read_metadata(model, str(self.model_path))
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads or usable_cores(),
                  "INFERENCE_PRECISION_HINT": self.precision}
        try:
            self._request = core.compile_model(model, "CPU", config).create_infer_request()
        except RuntimeError as error:
            raise BackendError(f"OpenVINO cannot compile {self.model_path} for the CPU: {first_line(error)}") from None
        return metadata

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self._request.infer({0: pixels})[0], dtype=np.float32)  # a copy (share_outputs=False)

    def deactivate_impl(self) -> None:
        del self._request

    def describe_impl(self) -> str:
        stored = self.metadata.extra.get("precision", "float32") if self.metadata is not None else "float32"
        precision = PRECISIONS[self.precision] if stored == "float32" else f"{stored}, the rest {PRECISIONS[self.precision]}"
        return f"OpenVINO CPU, {precision}, {self.threads or usable_cores()} threads"
