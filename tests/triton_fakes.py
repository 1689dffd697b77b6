"""A stand-in for a Triton Inference Server behind tritonclient, for the serving tests that need no server.

Only the network is faked. Requests are built with tritonclient's own `InferInput` / `InferRequestedOutput`
(the real classes: their encoding is what goes on the wire), and the fake client offers nothing the real
`InferenceServerClient` lacks (tests/test_serve_fake_triton.py checks every name and parameter against the
installed tritonclient). The fake server holds one model: its config comes from the project's repository
writer (export.triton_repo), its answers from ONNX Runtime on the served file, and it refuses what Triton
refuses (an unknown model, a wrong input, a batch above max_batch_size). It can also misbehave on purpose
(`fault`): swap the two logits, answer a batch's rows in reverse order, or answer each request with the
previous request's result.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import types

import numpy as np

INSTALLED = {}  # protocol -> the real tritonclient module, filled by fake_client_module


class FakeTritonServer:
    FAULTS = ("swapped-logits", "reversed-rows", "stale-answers")

    def __init__(self, onnx_path, max_batch: int = 8, model_name: str = "fmca", fault: str | None = None):
        import onnxruntime as ort
        from google.protobuf import json_format

        from export.triton_repo import build_config, read_artifact

        config = build_config(read_artifact(onnx_path), name=model_name, max_batch=max_batch)
        self.config = json_format.MessageToDict(config, preserving_proto_field_name=True)  # gRPC's JSON: int64 as text
        self.model_name = model_name
        self.max_batch = max_batch
        if fault not in (None, *self.FAULTS):
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault
        self.batches: list[int] = []  # the batch size of every request the model ran
        self._session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self._previous: np.ndarray | None = None
        self._lock = threading.Lock()

    def http_config(self) -> dict:
        """Triton's HTTP endpoint writes dims as JSON numbers."""
        config = {**self.config}
        config["input"] = [{**t, "dims": [int(d) for d in t["dims"]]} for t in config["input"]]
        config["output"] = [{**t, "dims": [int(d) for d in t["dims"]]} for t in config["output"]]
        return config

    def run(self, exception, model_name: str, name: str, datatype: str, shape: list[int], pixels: np.ndarray):
        if model_name != self.model_name:
            raise exception(f"Request for unknown model: '{model_name}' is not found")
        expected = self.config["input"][0]
        if name != expected["name"] or datatype != "FP32":
            raise exception(f"unexpected inference input '{name}' ({datatype}) for model '{model_name}'")
        if [int(d) for d in expected["dims"]] != list(shape[1:]):
            raise exception(f"unexpected shape for input '{name}' for model '{model_name}'. Expected "
                            f"[-1,{','.join(expected['dims'])}], got {shape}")
        if shape[0] > self.max_batch:
            raise exception(f"inference request batch-size must be <= {self.max_batch} for '{model_name}'")
        logits = self._session.run(None, {name: pixels.reshape(shape)})[0]
        if self.fault == "swapped-logits":
            logits = logits[:, ::-1].copy()
        if self.fault == "reversed-rows":
            logits = logits[::-1].copy()
        with self._lock:
            self.batches.append(shape[0])
            if self.fault == "stale-answers":
                logits, self._previous = (logits if self._previous is None else self._previous), logits
        return logits


class FakeInferResult:
    """What `client.infer` returns; `as_numpy` is the only method the fmca-rt client reads."""

    def __init__(self, outputs: dict[str, np.ndarray]):
        self._outputs = outputs

    def as_numpy(self, name):
        return self._outputs.get(name)


def _wire_pixels(tensor, protocol: str) -> np.ndarray:
    """The float32 data an InferInput carries, decoded as the server decodes it."""
    raw = tensor._get_binary_data() if protocol == "http" else tensor._get_content()
    return np.frombuffer(raw, np.float32)


def _call(real_method, *args, **kwargs) -> dict:
    """The arguments of a call bound to the real tritonclient method's signature: a call the real client would
    refuse raises the same TypeError here."""
    bound = inspect.signature(real_method).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments


def fake_client_module(server: FakeTritonServer, protocol: str) -> types.ModuleType:
    """A module that stands for `tritonclient.http` or `tritonclient.grpc`, talking to `server`."""
    real = INSTALLED.setdefault(protocol, importlib.import_module(f"tritonclient.{protocol}"))
    exception, real_client = real.InferenceServerException, real.InferenceServerClient

    class InferenceServerClient:
        def __init__(self, *args, **kwargs):
            self.url = _call(real_client.__init__, self, *args, **kwargs)["url"]
            self.closed = False

        def is_model_ready(self, *args, **kwargs):
            return _call(real_client.is_model_ready, self, *args, **kwargs)["model_name"] == server.model_name

        def get_model_config(self, *args, **kwargs):
            call = _call(real_client.get_model_config, self, *args, **kwargs)
            if call["model_name"] != server.model_name:
                raise exception(f"Request for unknown model: '{call['model_name']}' is not found")
            if protocol == "http":
                return server.http_config()
            if not call["as_json"]:
                raise NotImplementedError("the fake gRPC client answers model configs as JSON only")
            return {"config": server.config}

        def infer(self, *args, **kwargs):
            call = _call(real_client.infer, self, *args, **kwargs)
            (tensor,) = call["inputs"]
            logits = server.run(exception, call["model_name"], tensor.name(), tensor.datatype(), tensor.shape(),
                                _wire_pixels(tensor, protocol))
            output_name = server.config["output"][0]["name"]
            requested = [output.name() for output in call["outputs"]] if call["outputs"] else [output_name]
            return FakeInferResult({name: logits for name in requested if name == output_name})

        def close(self, *args, **kwargs):
            _call(real_client.close, self, *args, **kwargs)
            self.closed = True

    module = types.ModuleType(f"tritonclient.{protocol}")
    module.InferenceServerClient = InferenceServerClient
    module.InferenceServerException = exception
    module.InferInput = real.InferInput
    module.InferRequestedOutput = real.InferRequestedOutput
    module.InferResult = FakeInferResult
    return module
