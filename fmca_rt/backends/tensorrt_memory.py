"""Pinned host buffers, device buffers and one CUDA stream for TensorRT, through pycuda or torch.

`DeviceMemory.create("auto")` takes pycuda when it is installed, else a CUDA build of torch; "torch" is the
natural choice when the caller already works in torch tensors. Both give the same small interface:
`allocate(name, shape, dtype)` returns a pinned host array and the device pointer; `upload`/`download` copy
asynchronously on the one stream; `synchronize` waits. Only torch captures CUDA graphs here (pycuda has no
stream-capture API), so `capture_graph` returns None with pycuda.

CUDA work needs the device's context current on the calling thread, and a server calls from many threads:
`activated()` makes it current for one use (pycuda: push and pop the device's primary context; torch: make
`cuda:N` the current device). Every method here activates itself; callers wrap their TensorRT calls in it.
"""

from __future__ import annotations

import numpy as np

import contextlib

from ..errors import DependencyError, DeviceError
from .tensorrt_env import CUDA_HINT

KINDS = ("auto", "pycuda", "torch")


class DeviceMemory:
    kind = "base"

    @staticmethod
    def create(kind: str = "auto", device_index: int = 0) -> "DeviceMemory":
        if kind not in KINDS:
            raise DeviceError(f"Unknown device memory provider {kind!r}; choose one of: {', '.join(KINDS)}.")
        if kind in ("auto", "pycuda"):
            try:
                import pycuda.driver  # noqa: F401
            except ImportError:
                if kind == "pycuda":
                    raise DependencyError("memory='pycuda' needs pycuda: pip install pycuda.") from None
            else:
                return PycudaMemory(device_index)
        return TorchMemory(device_index)

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def upload(self, name: str, nbytes: int) -> None:
        raise NotImplementedError

    def download(self, name: str, nbytes: int) -> None:
        raise NotImplementedError

    @property
    def stream_handle(self) -> int:
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    def activated(self):
        """A context manager making this memory's device current on the calling thread while it is open."""
        return contextlib.nullcontext()

    def capture_graph(self, launch):
        """Record what `launch()` enqueues on the stream; returns a function replaying it, or None if unsupported."""
        return None

    def close(self) -> None:
        """Free every buffer."""


class PycudaMemory(DeviceMemory):
    kind = "pycuda"

    def __init__(self, device_index: int):
        import pycuda.driver as cuda

        self._cuda = cuda
        try:
            cuda.init()
            # The primary context is the one the CUDA runtime (and so TensorRT) uses: share it.
            self._context = cuda.Device(device_index).retain_primary_context()
        except cuda.Error as error:
            raise DeviceError(f"CUDA device {device_index} cannot be used ({error}).") from None
        self._buffers: dict[str, tuple[np.ndarray, object]] = {}
        with self.activated():
            self._stream = cuda.Stream()

    @contextlib.contextmanager
    def activated(self):
        self._context.push()
        try:
            yield
        finally:
            self._context.pop()

    def allocate(self, name, shape, dtype):
        with self.activated():
            host = self._cuda.pagelocked_empty(shape, dtype)
            device = self._cuda.mem_alloc(max(host.nbytes, 1))
        self._buffers[name] = (host, device)
        return host, int(device)

    def upload(self, name, nbytes):
        host, device = self._buffers[name]
        with self.activated():
            self._cuda.memcpy_htod_async(device, host.reshape(-1).view(np.uint8)[:nbytes], self._stream)

    def download(self, name, nbytes):
        host, device = self._buffers[name]
        with self.activated():
            self._cuda.memcpy_dtoh_async(host.reshape(-1).view(np.uint8)[:nbytes], device, self._stream)

    @property
    def stream_handle(self):
        return self._stream.handle

    def synchronize(self):
        with self.activated():
            self._stream.synchronize()

    def close(self):
        with self.activated():
            for _, device in self._buffers.values():
                device.free()
        self._buffers.clear()
        self._context.detach()


class TorchMemory(DeviceMemory):
    kind = "torch"

    def __init__(self, device_index: int):
        try:
            import torch
        except ImportError:
            raise DependencyError(f"Device memory for TensorRT needs pycuda or torch: {CUDA_HINT}.") from None
        if not torch.cuda.is_available() or device_index >= torch.cuda.device_count():
            raise DeviceError(f"torch sees no CUDA device {device_index}; TensorRT engines run on an NVIDIA GPU.")
        self._torch = torch
        self._device = torch.device("cuda", device_index)
        self._stream = torch.cuda.Stream(self._device)
        self._buffers: dict[str, tuple[object, object]] = {}

    def activated(self):
        return self._torch.cuda.device(self._device)

    def allocate(self, name, shape, dtype):
        torch_dtype = self._torch.from_numpy(np.empty(0, dtype)).dtype
        with self.activated():
            host = self._torch.empty(shape, dtype=torch_dtype, pin_memory=True)
            device = self._torch.empty(shape, dtype=torch_dtype, device=self._device)
        self._buffers[name] = (host, device)
        return host.numpy(), device.data_ptr()

    def _flat(self, name, nbytes):
        host, device = self._buffers[name]
        count = nbytes // host.element_size()
        return host.view(-1)[:count], device.view(-1)[:count]

    def upload(self, name, nbytes):
        host, device = self._flat(name, nbytes)
        with self.activated(), self._torch.cuda.stream(self._stream):
            device.copy_(host, non_blocking=True)

    def download(self, name, nbytes):
        host, device = self._flat(name, nbytes)
        with self.activated(), self._torch.cuda.stream(self._stream):
            host.copy_(device, non_blocking=True)

    @property
    def stream_handle(self):
        return self._stream.cuda_stream

    def synchronize(self):
        with self.activated():
            self._stream.synchronize()

    def capture_graph(self, launch):
        graph = self._torch.cuda.CUDAGraph()
        with self.activated(), self._torch.cuda.graph(graph, stream=self._stream):
            launch()

        def replay():
            with self.activated(), self._torch.cuda.stream(self._stream):
                graph.replay()

        return replay

    def close(self):
        self._buffers.clear()
