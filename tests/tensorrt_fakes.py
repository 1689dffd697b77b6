"""A stand-in for GPU memory used by the TensorRT tests: 'device' buffers are separate NumPy arrays reached through
fake pointers, and data moves only on upload/download, so code that forgets a copy or binds the wrong buffer
reads NaNs."""

import numpy as np

from fmca_rt.backends.tensorrt_memory import DeviceMemory


class HostMemory(DeviceMemory):
    kind = "host"

    def __init__(self, graphs=True):
        self.device, self.host, self.pointer_of, self.captures, self.graphs = {}, {}, {}, 0, graphs

    def allocate(self, name, shape, dtype):
        self.host[name] = np.zeros(shape, dtype)
        pointer = 0x1000 * (len(self.device) + 1)
        self.device[pointer] = np.full(shape, np.nan, dtype)
        self.pointer_of[name] = pointer
        return self.host[name], pointer

    def _pair(self, name, nbytes):
        count = nbytes // self.host[name].itemsize
        return self.host[name].reshape(-1)[:count], self.device[self.pointer_of[name]].reshape(-1)[:count]

    def upload(self, name, nbytes):
        host, device = self._pair(name, nbytes)
        device[:] = host

    def download(self, name, nbytes):
        host, device = self._pair(name, nbytes)
        host[:] = device

    stream_handle = 7

    def synchronize(self):
        pass

    def capture_graph(self, launch):
        if not self.graphs:
            return None
        self.captures += 1
        return launch


