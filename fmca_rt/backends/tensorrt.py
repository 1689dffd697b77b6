"""TensorRT backend: runs an engine built by `python -m export.build_engine` (plan + `fmca.engine.json` sidecar).

    with TensorRTBackend("fmca.engine") as backend:
        logits = backend.infer(pixels)          # float32 B x 3 x S x S -> B x 2

Activation reads the sidecar, checks the engine was built for this TensorRT version and GPU architecture
(a mismatch is one sentence quoting the rebuild command), deserializes it and prepares an `EngineSession`:
name-based I/O (TensorRT 10/11: `num_io_tensors`, `set_input_shape`, `set_tensor_address`,
`execute_async_v3`), buffers for the profile's largest batch allocated once (pinned host memory, async copies
on one stream), and a CUDA graph when the memory provider can capture one. A graph is valid only for the
context's state at capture (input shape, bound addresses): any change drops it, the next call runs the engine
plainly and the one after captures again. Batches larger than the profile are split and smaller ones padded by
the base class. Callers holding CUDA torch tensors use `infer_tensor`, which binds their memory directly (no host
round trip). Every TensorRT call runs inside `DeviceMemory.activated()`, so any thread may call; a lock lets one
call at a time use the context and its buffers.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from ..errors import BackendError, EngineError
from ..metadata import ModelMetadata
from .base import Backend
from .tensorrt_env import current_gpu, import_tensorrt
from .tensorrt_memory import DeviceMemory
from .tensorrt_sidecar import check_compatible, read_sidecar

log = logging.getLogger("fmca_rt.tensorrt")


def device_index(device: str | None) -> int:
    """None, 'cuda' -> 0; 'cuda:N' -> N."""
    if device in (None, "cuda", "gpu"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise BackendError(f"The tensorrt backend runs on a GPU: device must be 'cuda' or 'cuda:N', not {device!r}.")


class EngineSession:
    """One deserialized engine with its execution context and I/O buffers (for the profile's largest batch)."""

    def __init__(self, trt, engine, memory: DeviceMemory, input_name: str, output_name: str, cuda_graphs: bool = True):
        self._trt, self._engine, self._memory = trt, engine, memory
        self.input_name, self.output_name = input_name, output_name
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if inputs != [input_name] or output_name not in outputs:
            raise EngineError(f"The engine's inputs {inputs} and outputs {outputs} are not the model's "
                              f"({input_name!r} -> {output_name!r}); rebuild it with `python -m export.build_engine`.")
        smallest, _, largest = (tuple(shape) for shape in engine.get_tensor_profile_shape(input_name, 0))
        self.batch_range = (smallest[0], largest[0])
        self._context = engine.create_execution_context()
        if self._context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?).")
        self._input_shape: tuple[int, ...] | None = None
        self._host: dict[str, np.ndarray] = {}
        self._pointers: dict[str, int] = {}
        self._lock = threading.Lock()
        self._graph = None  # replays the engine for the context's current state; dropped when the state changes
        self._runs_in_state = 0
        self._use_graphs = cuda_graphs
        for name in names:  # every I/O tensor gets a buffer sized for the largest batch, bound once
            shape = largest if name == input_name else self._output_shape(name, largest)
            host, pointer = memory.allocate(name, shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
            self._host[name], self._pointers[name] = host, pointer
            self._bind(name, pointer)
        self.output_dtype = self._host[output_name].dtype

    def _output_shape(self, name: str, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._set_input_shape(input_shape)
        shape = tuple(self._context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise EngineError(f"The engine cannot tell the shape of {name!r} for input {input_shape}.")
        return shape

    def _state_changed(self) -> None:
        self._graph, self._runs_in_state = None, 0

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        if shape != self._input_shape:
            self._state_changed()
            if not self._context.set_input_shape(self.input_name, shape):
                self._input_shape = None
                raise EngineError(f"The engine does not accept input shape {shape} (its profile allows batches "
                                  f"{self.batch_range[0]} to {self.batch_range[1]}).")
            self._input_shape = shape

    def _bind(self, name: str, pointer: int) -> None:
        self._state_changed()
        if not self._context.set_tensor_address(name, pointer):
            raise EngineError(f"TensorRT refused the device address of {name!r}; the engine does not match this "
                              "backend (rebuild it with `python -m export.build_engine`).")

    def _enqueue(self, stream: int | None = None) -> None:
        if not self._context.execute_async_v3(self._memory.stream_handle if stream is None else stream):
            raise EngineError("TensorRT failed to run the engine (see its log above).")

    def _execute(self) -> None:
        """Enqueue the engine, or replay the CUDA graph captured in this state (one plain run first, then capture)."""
        if self._graph is not None:
            self._graph()
            return
        self._enqueue()
        self._runs_in_state += 1
        if not self._use_graphs or self._runs_in_state < 2:
            return
        self._memory.synchronize()
        try:
            self._graph = self._memory.capture_graph(self._enqueue)
        except RuntimeError as error:  # a plugin or TensorRT build that cannot be captured: run uncaptured
            log.warning("CUDA graph capture failed (%s); running without graphs.", error)
        if self._graph is None:  # this memory provider cannot capture graphs, or capture failed
            self._use_graphs = False

    def run(self, pixels: np.ndarray) -> np.ndarray:
        batch = len(pixels)
        with self._lock, self._memory.activated():
            self._set_input_shape(tuple(pixels.shape))
            host_input = self._host[self.input_name]
            host_input[:batch] = pixels  # converts to the engine's input type if it is not float32
            self._memory.upload(self.input_name, host_input[:batch].nbytes)
            self._execute()
            host_output = self._host[self.output_name]
            self._memory.download(self.output_name, host_output[:batch].nbytes)
            self._memory.synchronize()
            return host_output[:batch].astype(np.float32)  # a copy, made before another call reuses the buffer

    def run_bound(self, input_pointer: int, output_pointer: int, shape: tuple[int, ...], stream: int) -> None:
        """Run on caller-owned device memory (no copies) and the caller's stream; the own buffers stay bound
        for `run`. The output must be float32 B x classes at `output_pointer`."""
        with self._lock, self._memory.activated():
            self._set_input_shape(shape)
            try:
                self._bind(self.input_name, input_pointer)
                self._bind(self.output_name, output_pointer)
                self._enqueue(stream)
            finally:
                for name in (self.input_name, self.output_name):
                    self._bind(name, self._pointers[name])

    def close(self) -> None:
        self._graph = None
        self._context = None
        self._memory.close()


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, model_path: str | Path, device: str | None = None, memory: str = "auto",
                 cuda_graphs: bool = True):
        super().__init__(model_path, device)
        self.memory_kind = memory
        self.cuda_graphs = cuda_graphs
        self._session: EngineSession | None = None
        self._runtime = None  # kept for as long as the engine it deserialized

    def activate_impl(self) -> ModelMetadata:
        trt = import_tensorrt()
        sidecar = read_sidecar(self.model_path)
        index = device_index(self.device)
        check_compatible(sidecar, trt.__version__, current_gpu(index), self.model_path.name)
        memory = DeviceMemory.create(self.memory_kind, index)
        try:
            with memory.activated():
                self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
                engine = self._runtime.deserialize_cuda_engine(self.model_path.read_bytes())
                if engine is None:
                    raise EngineError(f"TensorRT could not load {self.model_path.name} (see its log above); rebuild "
                                      f"it on this machine: {sidecar.build_command}")
                metadata = sidecar.metadata
                self._session = EngineSession(trt, engine, memory, metadata.input_name, metadata.output_name,
                                              self.cuda_graphs)
        except BaseException:
            memory.close()
            raise
        self.batch_limits = self._session.batch_range
        return sidecar.metadata

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        return self._session.run(pixels)

    def infer_tensor(self, pixels):
        """For callers working in torch: CUDA float32 B x 3 x S x S on this GPU -> logits B x classes on it.

        No host copies: the engine reads and writes the tensors' memory on torch's current stream.
        """
        import torch

        if not self.is_active:
            raise BackendError("The tensorrt backend is not active; call activate() or use it in a with block.")
        size, classes = self.metadata.image_size, len(self.metadata.class_names)
        index = device_index(self.device)
        if (not isinstance(pixels, torch.Tensor) or pixels.dtype != torch.float32 or pixels.dim() != 4
                or tuple(pixels.shape[1:]) != (3, size, size) or pixels.device != torch.device("cuda", index)):
            raise BackendError(f"infer_tensor takes a float32 torch tensor B x 3 x {size} x {size} on cuda:{index}.")
        if self._session.output_dtype != np.float32:
            raise BackendError(f"infer_tensor needs an engine with float32 logits; this one writes "
                               f"{self._session.output_dtype}.")
        pixels = pixels.contiguous()
        smallest, largest = self.batch_limits
        stream = torch.cuda.current_stream(pixels.device).cuda_stream
        outputs = []
        for start in range(0, len(pixels), largest):
            chunk = pixels[start:start + largest]
            real = len(chunk)
            if real < smallest:  # pad with copies of the last image, as `infer` does
                chunk = torch.cat([chunk, chunk[-1:].expand(smallest - real, -1, -1, -1)])
            logits = torch.empty((len(chunk), classes), dtype=torch.float32, device=pixels.device)
            self._session.run_bound(chunk.data_ptr(), logits.data_ptr(), tuple(chunk.shape), stream)
            outputs.append(logits[:real])
        return torch.cat(outputs)

    def deactivate_impl(self) -> None:
        self._session.close()
        self._session = self._runtime = None

    def describe_impl(self) -> str:
        return f"cuda:{device_index(self.device)}"
