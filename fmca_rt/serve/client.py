"""A Backend that classifies through a Triton Inference Server, so a remote model is just another Detector.

    from fmca_rt.serve import remote_detector, TritonBackend

    detector = remote_detector("grpc://gpu-server:8001", threshold="fpr@1%")   # faces found on this machine
    result = detector.predict("photo.jpg")          # ImageResult, identical to Detector("fmca.onnx").predict

    with TritonBackend("http://gpu-server:8000") as backend:
        logits = backend.infer(pixels)              # float32 B x 3 x S x S -> B x 2, like any backend

The model's metadata (input size, normalization, class names, calibration) comes from the server, so the
client never repeats it. Works with `fmca-rt serve` and with `tritonserver` over a repository written by
`python -m export.triton_repo`; HTTP and gRPC (tritonclient) give the same answers.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from ..errors import BackendError, DependencyError, ServeError
from ..metadata import ModelMetadata
from ..backends.base import Backend
from .protocol import (DEFAULT_MODEL_NAME, INSTALL_HINT, METADATA_INPUT, METADATA_OUTPUT, Endpoint, check_served_model,
                       decode_metadata, metadata_from_config, metadata_model_name, parse_endpoint, server_error_message)


def import_client_module(protocol: str):
    """tritonclient.http or tritonclient.grpc, or a DependencyError naming the install command."""
    try:
        return importlib.import_module(f"tritonclient.{protocol}")
    except ImportError:
        raise DependencyError(f"Talking to a Triton server over {protocol.upper()} needs tritonclient, but "
                              f"'tritonclient[{protocol}]' is not installed: {INSTALL_HINT}.") from None


def build_request(module, pixels: np.ndarray, input_name: str, output_name: str):
    """tritonclient inputs and requested outputs for one batch of pixels (binary tensors over HTTP)."""
    tensor = module.InferInput(input_name, list(pixels.shape), "FP32")
    if module.__name__.endswith("http"):
        tensor.set_data_from_numpy(pixels, binary_data=True)
        outputs = [module.InferRequestedOutput(output_name, binary_data=True)]
    else:
        tensor.set_data_from_numpy(pixels)
        outputs = [module.InferRequestedOutput(output_name)]
    return [tensor], outputs


def fetch_config(client, endpoint: Endpoint, model_name: str, **options) -> dict:
    """The model's config in Triton's JSON form (gRPC wraps it in {"config": ...})."""
    if endpoint.protocol == "grpc":
        return client.get_model_config(model_name, as_json=True, **options)["config"]
    return client.get_model_config(model_name, **options)


class TritonBackend(Backend):
    """Sends preprocessed pixels to a Triton server; `model_path` is its address ("grpc://host:8001")."""

    name = "triton"

    def __init__(self, url: str, device: str | None = None, model_name: str = DEFAULT_MODEL_NAME,
                 timeout_s: float = 30.0):
        self.endpoint = parse_endpoint(str(url))
        super().__init__(Path(f"{self.endpoint.address}/{model_name}"), device)
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._module = self._client = None

    def activate(self) -> "TritonBackend":
        if not self.is_active:  # no model file here: activate_impl asks the server instead
            try:
                self.metadata = self.activate_impl()
            except ServeError:
                if self._client is not None:
                    self.deactivate_impl()
                raise
            self.is_active = True
        return self

    def activate_impl(self) -> ModelMetadata:
        self._module = import_client_module(self.endpoint.protocol)
        source = f"Triton model {self.model_name!r} at {self.endpoint}"
        try:
            if self.endpoint.protocol == "grpc":
                self._client = self._module.InferenceServerClient(self.endpoint.address)
            else:  # geventhttpclient's timeouts, in seconds
                self._client = self._module.InferenceServerClient(
                    self.endpoint.address, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
            ready = self._client.is_model_ready(self.model_name, **self._call_options())
        except Exception as error:  # tritonclient raises its own, gevent's, socket and gRPC errors
            raise ServeError(f"No Triton server answers at {self.endpoint} ({server_error_message(error)}); start "
                             "one with `fmca-rt serve --model M` or `tritonserver --model-repository REPO`.") from None
        if not ready:
            raise ServeError(f"The Triton server at {self.endpoint} has no ready model {self.model_name!r}.")
        try:
            config = fetch_config(self._client, self.endpoint, self.model_name, **self._call_options())
            metadata = metadata_from_config(config, source) or self._metadata_from_companion(source)
        except self._module.InferenceServerException as error:
            raise ServeError(f"{source} did not describe itself: {server_error_message(error)}.") from None
        largest = check_served_model(config, metadata, source)
        self.batch_limits = (1, largest if largest > 0 else None)
        return metadata

    def _metadata_from_companion(self, source: str) -> ModelMetadata:
        """`fmca-rt serve` answers metadata through a companion model (PyTriton configs take no parameters)."""
        inputs = [self._module.InferInput(METADATA_INPUT, [1, 1], "INT32")]
        inputs[0].set_data_from_numpy(np.zeros((1, 1), np.int32))
        result = self._client.infer(metadata_model_name(self.model_name), inputs, **self._call_options())
        return decode_metadata(result.as_numpy(METADATA_OUTPUT).reshape(-1)[0], source)

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        inputs, outputs = build_request(self._module, pixels, self.metadata.input_name, self.metadata.output_name)
        try:
            result = self._client.infer(self.model_name, inputs, outputs=outputs, **self._call_options())
        except self._module.InferenceServerException as error:
            raise BackendError(f"The Triton server at {self.endpoint} refused the request: "
                               f"{server_error_message(error)}.") from None
        except OSError as error:  # the HTTP client's socket errors and timeouts (gRPC's arrive as the above)
            raise BackendError(f"The Triton server at {self.endpoint} did not answer: "
                               f"{server_error_message(error)}.") from None
        return result.as_numpy(self.metadata.output_name)

    def _call_options(self) -> dict:
        """gRPC calls take a deadline per call; the HTTP client has its timeouts from construction."""
        return {"client_timeout": self.timeout_s} if self.endpoint.protocol == "grpc" else {}

    def deactivate_impl(self) -> None:
        self._client.close()
        self._client = None

    def describe_impl(self) -> str:
        return str(self.endpoint)


def remote_detector(url: str, model_name: str = DEFAULT_MODEL_NAME, timeout_s: float = 30.0, **detector_options):
    """A Detector whose classifier runs on a Triton server; options are Detector's (faces, threshold, ...)."""
    from ..detector import Detector

    return Detector(TritonBackend(url, model_name=model_name, timeout_s=timeout_s), **detector_options)
