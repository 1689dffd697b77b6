"""The Detector's classifier behind a real Triton Inference Server, started in-process by NVIDIA PyTriton.

    with ClassifierServer("fmca.onnx", max_batch=16) as server:   # 127.0.0.1:8000 (HTTP), :8001 (gRPC)
        print(server.urls)
        server.serve_forever()                                      # until Ctrl-C (`fmca-rt serve` does this)

Triton's dynamic batcher merges concurrent requests into one batch of at most `max_batch` crops (default:
the backend's largest batch, e.g. the engine profile's, else 16); each of `instances` model instances owns
its own backend session. Triton checks every request's shape and dtype against the model config before it
reaches Python, so a malformed request gets its own error and never fails the batch it would have joined.
The model's metadata is served by the companion model "<name>_metadata" (see protocol.py).
"""

from __future__ import annotations

import logging
import os
import sysconfig
from collections import Counter
from pathlib import Path

import numpy as np

from ..backends import Backend, create_backend
from ..errors import DependencyError, FMCAError, ServeError
from .protocol import (DEFAULT_MODEL_NAME, DEFAULT_PORTS, INSTALL_HINT, METADATA_INPUT, METADATA_OUTPUT,
                       encode_metadata, metadata_model_name)

log = logging.getLogger("fmca_rt.serve")
DEFAULT_MAX_BATCH = 16
DEFAULT_QUEUE_DELAY_US = 1000


def import_pytriton():
    try:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError:
        raise DependencyError("`fmca-rt serve` starts Triton through NVIDIA PyTriton, but 'nvidia-pytriton' is not "
                              f"installed: {INSTALL_HINT} (x86_64 or arm64 Linux with glibc >= 2.35; PyTriton needs "
                              "numpy < 2, see docs/serving.md).") from None
    return DynamicBatcher, ModelConfig, Tensor, Triton, TritonConfig


def use_this_interpreters_libpython() -> None:
    """PyTriton's model stub links libpython3.X dynamically and finds the system's first; under a pyenv or conda
    interpreter that one can be an older patch release whose C core does not match this interpreter's standard
    library (model start-up then fails inside multiprocessing). Put this interpreter's library first."""
    libdir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("INSTSONAME")
    if libdir and library and (Path(libdir) / library).is_file():
        paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
        if libdir not in paths:
            os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *paths])


def classify_requests(backend: Backend, requests: list, input_name: str, output_name: str) -> list[dict]:
    """One dynamic batch: every request's pixels through the backend in one call, logits split back per request."""
    pixels = [np.asarray(request[input_name]) for request in requests]
    sizes = [len(p) for p in pixels]
    logits = backend.infer(np.concatenate(pixels))
    return [{output_name: part} for part in np.split(logits, np.cumsum(sizes)[:-1])]


class ClassifierServer:
    """A PyTriton server for one fmca-rt model; `start()` returns once the model is ready on both protocols."""

    def __init__(self, model: str | Path, backend: str = "auto", device: str | None = None,
                 model_name: str = DEFAULT_MODEL_NAME, host: str = "127.0.0.1", http_port: int = DEFAULT_PORTS["http"],
                 grpc_port: int = DEFAULT_PORTS["grpc"], metrics_port: int = 8002, max_batch: int | None = None,
                 queue_delay_us: int = DEFAULT_QUEUE_DELAY_US, instances: int = 1, log_file: str | Path | None = None):
        if instances < 1:
            raise ServeError(f"instances must be at least 1, got {instances}.")
        if max_batch is not None and max_batch < 1:
            raise ServeError(f"max_batch must be at least 1, got {max_batch}.")
        if queue_delay_us < 0:
            raise ServeError(f"queue_delay_us cannot be negative, got {queue_delay_us}.")
        self.model, self.backend_name, self.device = Path(model), backend, device
        self.model_name, self.host = model_name, host
        self.ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self.requested_max_batch, self.queue_delay_us, self.instances = max_batch, queue_delay_us, instances
        self.log_file = Path(log_file) if log_file else None
        self.backends: list[Backend] = []
        self.max_batch: int | None = None
        self.merged_requests: Counter[int] = Counter()  # how many requests each executed batch merged
        self._triton = None

    @property
    def urls(self) -> dict[str, str]:
        return {"http": f"http://{self.host}:{self.ports['http']}", "grpc": f"grpc://{self.host}:{self.ports['grpc']}"}

    def _open_backends(self) -> None:
        for _ in range(self.instances):
            self.backends.append(create_backend(self.model, self.backend_name, self.device).activate())
        largest = self.backends[0].batch_limits[1]
        self.max_batch = self.requested_max_batch or largest or DEFAULT_MAX_BATCH
        if largest is not None and self.max_batch > largest:
            raise ServeError(f"max_batch {self.max_batch} exceeds the {self.backends[0].name} backend's largest batch "
                             f"({largest}).")

    def start(self) -> "ClassifierServer":
        DynamicBatcher, ModelConfig, Tensor, Triton, TritonConfig = import_pytriton()
        try:
            self._open_backends()
            metadata = self.backends[0].metadata
            use_this_interpreters_libpython()
            config = TritonConfig(http_address=self.host, grpc_address=self.host, metrics_address=self.host,
                                  http_port=self.ports["http"], grpc_port=self.ports["grpc"],
                                  metrics_port=self.ports["metrics"], log_file=self.log_file, log_verbose=0)
            self._triton = Triton(config=config)
            size = metadata.image_size
            self._triton.bind(
                model_name=self.model_name,
                infer_func=[self._infer_function(backend) for backend in self.backends],
                inputs=[Tensor(name=metadata.input_name, dtype=np.float32, shape=(3, size, size))],
                outputs=[Tensor(name=metadata.output_name, dtype=np.float32, shape=(metadata.output_width,))],
                config=ModelConfig(max_batch_size=self.max_batch, batcher=DynamicBatcher(
                    max_queue_delay_microseconds=self.queue_delay_us)),
                strict=True)
            blob = encode_metadata(metadata)

            def answer_metadata(requests: list) -> list[dict]:
                return [{METADATA_OUTPUT: np.array([[blob]] * len(r[METADATA_INPUT]), dtype=object)} for r in requests]

            self._triton.bind(
                model_name=metadata_model_name(self.model_name),
                infer_func=answer_metadata,
                inputs=[Tensor(name=METADATA_INPUT, dtype=np.int32, shape=(1,))],
                outputs=[Tensor(name=METADATA_OUTPUT, dtype=bytes, shape=(1,))],
                config=ModelConfig(max_batch_size=8, batching=True))
            self._triton.run()
        except FMCAError:
            self.stop()
            raise
        except Exception as error:  # PyTriton raises its own errors, timeouts and OSErrors (ports in use, ...)
            self.stop()
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise ServeError(f"Triton could not start on {self.host} (HTTP {self.ports['http']}, gRPC "
                             f"{self.ports['grpc']}, metrics {self.ports['metrics']}): {reason}") from None
        log.info("Serving %s as %r: %s, %s (max batch %d, %d instance(s))", self.model.name, self.model_name,
                 self.urls["http"], self.urls["grpc"], self.max_batch, self.instances)
        return self

    def _infer_function(self, backend: Backend):
        metadata = backend.metadata

        def infer(requests: list) -> list[dict]:
            self.merged_requests[len(requests)] += 1
            return classify_requests(backend, requests, metadata.input_name, metadata.output_name)

        return infer

    def serve_forever(self) -> None:
        """Block until interrupted (Ctrl-C or SIGTERM), then stop."""
        if self._triton is None:
            self.start()
        try:
            self._triton.serve()
        finally:
            self.stop()

    def stop(self) -> None:
        if self._triton is not None:
            triton, self._triton = self._triton, None
            triton.stop()
        for backend in self.backends:
            backend.deactivate()
        self.backends.clear()

    def __enter__(self) -> "ClassifierServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
