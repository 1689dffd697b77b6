"""The shape every inference backend has (after Polygraphy's runners).

The base class owns the public methods and the checks every backend needs; a backend overrides only the
`*_impl` hooks. Nothing heavy happens in the constructor: the engine library is imported and the model
loaded in `activate()`, so creating a backend is cheap and `import fmca_rt` stays light.

    with OnnxRuntimeBackend("model.onnx") as backend:   # activate() ... deactivate()
        logits = backend.infer(pixels)                   # float32 B x 3 x S x S -> float32 B x 2

A backend whose engine cannot run two batches at once from different threads (one TensorRT execution
context, its device buffers) leaves `thread_safe` False and `infer` takes a lock; ONNX Runtime's sessions
and PyTorch's eval-mode forward are safe to call concurrently.

A backend may accept only some batch sizes (an engine built for a fixed batch): it sets `batch_limits`
(smallest, largest) in `activate_impl`, and `infer` splits larger batches and pads smaller ones.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from ..errors import BackendError
from ..metadata import ModelMetadata


class Backend:
    """Base class: `activate / infer / deactivate`, a context manager, input and output checks, timing."""

    name = "base"  # the registry name ("torch", "onnxruntime", "tensorrt")
    thread_safe = False  # may infer_impl run in several threads at once?

    def __init__(self, model_path: str | Path, device: str | None = None):
        self.model_path = Path(model_path)
        self.device = device
        self.metadata: ModelMetadata | None = None
        self.batch_limits: tuple[int, int | None] = (1, None)
        self.last_inference_time: float | None = None  # seconds spent in infer_impl by the last infer()
        self.is_active = False
        self._infer_lock = threading.Lock()

    # ---- hooks for subclasses -------------------------------------------------------------------------
    def activate_impl(self) -> ModelMetadata:
        """Import the engine library, load the model, return its metadata (may set self.batch_limits)."""
        raise NotImplementedError

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        """Run one batch (its size within batch_limits): float32 B x 3 x S x S -> logits B x num_classes."""
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        """Release the model and any device memory."""

    def describe_impl(self) -> str:
        """Where the model runs, for logs and latency tables ("CPUExecutionProvider", "cuda:0", ...)."""
        return self.device or "default"

    # ---- public API -----------------------------------------------------------------------------------
    def activate(self) -> "Backend":
        if self.is_active:
            return self
        if not self.model_path.is_file():
            raise BackendError(f"Model file {self.model_path} does not exist.")
        self.metadata = self.activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc_info) -> None:
        self.deactivate()

    def describe(self) -> str:
        return f"{self.name} ({self.describe_impl()})"

    def infer(self, pixels: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise BackendError(f"The {self.name} backend is not active; call activate() or use it in a with block.")
        self._check_input(pixels)
        if not self.thread_safe:
            with self._infer_lock:
                return self._infer_checked(pixels)
        return self._infer_checked(pixels)

    def _infer_checked(self, pixels: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        step = self._max_chunk(len(pixels))
        chunks = [self._infer_chunk(pixels[i:i + step]) for i in range(0, len(pixels), step)]
        self.last_inference_time = time.perf_counter() - start
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.metadata.class_names)), np.float32)

    # ---- checks and batching --------------------------------------------------------------------------
    def _check_input(self, pixels: np.ndarray) -> None:
        size = self.metadata.image_size
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32:
            kind = pixels.dtype if isinstance(pixels, np.ndarray) else type(pixels).__name__
            raise BackendError(f"The {self.name} backend takes a float32 array, got {kind}.")
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise BackendError(f"The {self.name} backend takes B x 3 x {size} x {size} pixels, "
                               f"got shape {pixels.shape}.")

    def _max_chunk(self, batch: int) -> int:
        largest = self.batch_limits[1]
        return max(batch if largest is None else min(batch, largest), 1)

    def _infer_chunk(self, chunk: np.ndarray) -> np.ndarray:
        real = len(chunk)
        smallest = self.batch_limits[0]
        if real < smallest:  # a fixed-batch engine: pad with copies of the last item, drop their outputs
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], smallest - real, axis=0)])
        logits = np.asarray(self.infer_impl(np.ascontiguousarray(chunk)), dtype=np.float32)
        self._check_output(logits, len(chunk))
        return logits[:real]

    def _check_output(self, logits: np.ndarray, batch: int) -> None:
        expected = (batch, len(self.metadata.class_names))
        if logits.shape != expected:
            raise BackendError(f"The {self.name} backend returned logits of shape {logits.shape}, "
                               f"expected {expected}.")
