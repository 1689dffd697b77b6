"""ONNX Runtime backend: CUDA when onnxruntime-gpu offers it, else the CPU. Model facts come from the
file's fmca-rt metadata (written by `python -m export.onnx`)."""

from __future__ import annotations

import numpy as np

from ..errors import DependencyError
from ..metadata import ModelMetadata
from ..errors import BackendError
from .base import Backend


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    thread_safe = True

    def activate_impl(self) -> ModelMetadata:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError("The onnxruntime backend needs ONNX Runtime, but 'onnxruntime' is not installed: "
                                  "pip install onnxruntime (or onnxruntime-gpu for CUDA).") from None
        session_path = self.session_model_path()
        try:
            self._session = ort.InferenceSession(str(session_path), self.session_options(ort),
                                                 providers=self._providers(ort))
        except Exception as error:  # ONNX Runtime raises its own pybind exception types, not importable by name
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise BackendError(f"ONNX Runtime cannot load {session_path}: {reason}") from None
        props = self._session.get_modelmeta().custom_metadata_map
        metadata = ModelMetadata.from_onnx_props(props, source=str(self.model_path))
        self._check_graph(metadata)
        batch = self._session.get_inputs()[0].shape[0]
        if isinstance(batch, int) and batch > 0:
            self.batch_limits = (batch, batch)
        return metadata

    def _check_graph(self, metadata: ModelMetadata) -> None:
        """The metadata must describe the graph: its input and output names and sizes (BackendError)."""
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        size, classes = metadata.image_size, len(metadata.class_names)
        problem = None
        if metadata.input_name not in inputs:
            problem = f"its metadata names the input {metadata.input_name!r}, but the graph's is {', '.join(inputs)}"
        elif metadata.output_name not in outputs:
            problem = f"its metadata names the output {metadata.output_name!r}, but the graph's is {', '.join(outputs)}"
        else:
            shape, out_shape = inputs[metadata.input_name], outputs[metadata.output_name]
            expected = [None, 3, size, size]
            if len(shape) != 4 or any(isinstance(d, int) and e is not None and d != e for d, e in zip(shape, expected)):
                problem = f"its metadata says B x 3 x {size} x {size} pixels, but the graph takes {shape}"
            elif len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != classes):
                problem = f"its metadata names {classes} classes, but the graph's output has shape {out_shape}"
        if problem:
            del self._session
            raise BackendError(f"{self.model_path} does not match its own metadata: {problem}; export it again with "
                               "`python -m export.onnx`.")

    def session_model_path(self):
        """The file the session loads (the cpu backend substitutes the model's INT8 form)."""
        return self.model_path

    def session_options(self, ort):
        """The session's options (the cpu backend tunes threads and graph optimizations)."""
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; ONNX Runtime's warnings are not the user's business
        return options

    def _providers(self, ort) -> list:
        available = ort.get_available_providers()
        wants_cuda = self.device is None or self.device.startswith("cuda")
        if wants_cuda and "CUDAExecutionProvider" in available:
            device_id = int(self.device.split(":")[1]) if self.device and ":" in self.device else 0
            return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
        if self.device and self.device.startswith("cuda"):
            raise BackendError("device='cuda' was asked for, but this ONNX Runtime has no CUDA provider: "
                               "pip install onnxruntime-gpu.")
        return ["CPUExecutionProvider"]

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        return self._session.run([self.metadata.output_name], {self.metadata.input_name: pixels})[0]

    def deactivate_impl(self) -> None:
        del self._session

    def describe_impl(self) -> str:
        return self._session.get_providers()[0] if self.is_active else (self.device or "auto")
