"""The face detector's network through the project's backends: ONNX Runtime and TensorRT.

Same public shape as the classifier's backends (`activate / infer / deactivate`); what differs is the data:
the input is a batch of letterboxed canvases (B x 3 x H x W, sides multiples of the network's stride) and the
output the network's outputs packed into one array, batch first (`FaceNetwork.pack`).

- ONNX Runtime reads the network from its installed package (`fmca_rt.face_networks`); any canvas size.
- TensorRT runs an engine built by `python -m export.face_onnx` + `python -m export.build_engine` (one packed
  output, a fixed square canvas); the sidecar says which network it is and its canvas.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendError, DependencyError
from ..face_networks import FaceNetwork, face_network
from ..metadata import FACE_DETECTOR_KIND, ModelMetadata
from .onnxruntime import OnnxRuntimeBackend
from .tensorrt import TensorRTBackend

PACKED_OUTPUT = "detections"


def face_metadata(network: FaceNetwork, canvas: int | None = None) -> ModelMetadata:
    """What a face network artifact says about itself (ONNX metadata_props, engine sidecar)."""
    config = {"kind": FACE_DETECTOR_KIND, "network": network.name, "image_size": canvas,
              "class_names": ["background", "face"], "mean": list(network.mean), "channels": network.channels}
    return ModelMetadata(config=config, input_name=network.input_name, output_name=PACKED_OUTPUT)


class FaceNetworkChecks:
    """Input and output checks of a face network backend (mixed in before the engine's backend class)."""

    network: FaceNetwork
    fixed_canvas: int | None = None  # a square canvas side the model was built for, or None for any

    def _check_input(self, pixels: np.ndarray) -> None:
        multiple = self.network.multiple
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32 or pixels.ndim != 4 or pixels.shape[1] != 3:
            raise BackendError(f"The {self.name} face network takes float32 B x 3 x H x W canvases, got "
                               f"{getattr(pixels, 'shape', type(pixels).__name__)}.")
        height, width = pixels.shape[2:]
        if self.fixed_canvas is not None and (height, width) != (self.fixed_canvas, self.fixed_canvas):
            raise BackendError(f"This face engine was built for {self.fixed_canvas} x {self.fixed_canvas} canvases, "
                               f"got {height} x {width}.")
        if height % multiple or width % multiple:
            raise BackendError(f"Face network canvases must have sides that are multiples of {multiple}, got "
                               f"{height} x {width}.")

    def _check_output(self, packed: np.ndarray, batch: int) -> None:
        if packed.ndim < 2 or packed.shape[0] != batch:
            raise BackendError(f"The {self.name} face network returned shape {packed.shape} for {batch} canvases.")


class FaceOnnxRuntimeBackend(FaceNetworkChecks, OnnxRuntimeBackend):
    """A packaged face network in ONNX Runtime (CUDA when onnxruntime-gpu offers it and device allows)."""

    def __init__(self, network: FaceNetwork, device: str | None = None):
        self.network = network
        super().__init__(network.weights_path(), device)

    def activate_impl(self) -> ModelMetadata:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError("The CNN face detector runs in ONNX Runtime, but 'onnxruntime' is not "
                                  "installed: pip install onnxruntime.") from None
        try:
            self._session = ort.InferenceSession(self.network.onnx_bytes(), self.session_options(ort),
                                                 providers=self._providers(ort))
        except Exception as error:  # ONNX Runtime's own pybind exception types
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise BackendError(f"ONNX Runtime cannot load the {self.network.name} face network: {reason}") from None
        return face_metadata(self.network)

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        return self.network.pack(self._session.run(list(self.network.output_names), {self.network.input_name: pixels}))


class FaceTensorRTBackend(FaceNetworkChecks, TensorRTBackend):
    """A face network engine (`fmca-faces.engine` + sidecar) in TensorRT."""

    def activate_impl(self) -> ModelMetadata:
        metadata = super().activate_impl()
        if metadata.config.get("kind") != FACE_DETECTOR_KIND:
            self.deactivate_impl()
            raise BackendError(f"{self.model_path.name} is not a face detector engine; build one with "
                               "`python -m export.face_onnx` and `python -m export.build_engine`.")
        self.network = face_network(metadata.config["network"])
        self.fixed_canvas = int(metadata.config["image_size"])
        return metadata
