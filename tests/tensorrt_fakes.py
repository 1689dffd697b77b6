"""Stand-ins for what only TensorRT's native library and a GPU can make, used by the TensorRT tests.

- `fake_tensorrt(generation)`: the enums and base classes the code uses, with the members of TensorRT 10 or 11.
  It stands in for the module where NVIDIA's bindings are absent; where they are present (the child processes of
  `test_tensorrt_bindings.py`), `tensorrt_api` gives the real module with only its factories replaced, and
  `tests/tensorrt_real` checks that every fake here offers nothing the real classes of its generation lack.
- `HostMemory`: GPU memory as separate NumPy arrays reached through fake pointers; data moves only on
  upload/download, so code that forgets a copy or binds the wrong buffer reads NaNs. A "CUDA graph" records the
  launches with the context's state (shape, addresses) at capture; replaying it after that state changed gives NaNs,
  as TensorRT documents a graph to be valid only for the state it was captured in.
- `FakeEngine`/`FakeContext`/`FakeRuntime`: the name-based engine API over NumPy; the engine's "kernels" are a
  function of the pixels read at the bound input address. Deserializing, creating a context and running refuse
  to happen outside `HostMemory.activated()`, where a GPU would have no current context.
"""

import enum
import types

import numpy as np

from fmca_rt.backends.tensorrt_memory import DeviceMemory

try:  # NVIDIA's bindings, in the child processes of test_tensorrt_bindings.py only
    import tensorrt as _real_tensorrt
except ImportError:
    _real_tensorrt = None


def _enum(name, members):
    return enum.IntEnum(name, members if isinstance(members, dict) else {m: i for i, m in enumerate(members)})


def fake_tensorrt(generation: int) -> types.SimpleNamespace:
    """The parts of the `tensorrt` module the code uses, as TensorRT `generation` (10 or 11) defines them."""
    data_type = _enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64"])
    severity = _enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])
    trt = types.SimpleNamespace(
        __version__="10.3.0" if generation == 10 else "11.4.0.106",
        # 10.x numbers EXPLICIT_BATCH 0, STRONGLY_TYPED 1; 11 dropped EXPLICIT_BATCH and renumbered.
        NetworkDefinitionCreationFlag=_enum("NetworkDefinitionCreationFlag", [
            "EXPLICIT_BATCH", "STRONGLY_TYPED"] if generation == 10 else [
            "STRONGLY_TYPED", "PREFER_JIT_PYTHON_PLUGINS", "PREFER_AOT_PYTHON_PLUGINS"]),
        # TensorRT 11 removed the precision flags (FP16, INT8, BF16, FP8) and the precision constraints.
        BuilderFlag=_enum("BuilderFlag", ["FP16", "INT8", "TF32", "OBEY_PRECISION_CONSTRAINTS",
                                          "PREFER_PRECISION_CONSTRAINTS"] if generation == 10 else ["TF32"]),
        MemoryPoolType=_enum("MemoryPoolType", ["WORKSPACE"]),
        LayerType=_enum("LayerType", ["CONVOLUTION", "ACTIVATION", "POOLING", "ELEMENTWISE", "SOFTMAX", "SHUFFLE",
                                      "REDUCE", "MATRIX_MULTIPLY", "CAST", "NORMALIZATION"]),
        TensorIOMode=_enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"]),
        DataType=data_type, float32=data_type.FLOAT, float16=data_type.HALF, int32=data_type.INT32,
        int64=data_type.INT64, int8=data_type.INT8,
        ILogger=type("ILogger", (), {"Severity": severity, "__init__": lambda self: None}),
        IProgressMonitor=type("IProgressMonitor", (), {"__init__": lambda self: None}),
    )
    trt.Logger = type("Logger", (trt.ILogger,), {"__init__": lambda self, min_severity=severity.WARNING: None,
                                                  "WARNING": severity.WARNING})
    if generation == 10:  # calibrators are gone in 11
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None})
    numpy_types = {data_type.FLOAT: np.float32, data_type.HALF: np.float16, data_type.INT32: np.int32,
                   data_type.INT64: np.int64, data_type.INT8: np.int8}
    trt.nptype = lambda dtype: numpy_types[dtype]
    return trt


def generations() -> list[int]:
    """The TensorRT generations the tests run against here: the real one where NVIDIA's bindings import."""
    return [int(_real_tensorrt.__version__.split(".")[0])] if _real_tensorrt is not None else [10, 11]


def tensorrt_api(generation: int, **factories):
    """The `tensorrt` module the code gets: NVIDIA's real one (only `factories` replaced, each call checked
    against the real signatures) where it imports, else `fake_tensorrt(generation)` with `factories` added."""
    if _real_tensorrt is None:
        return types.SimpleNamespace(**{**vars(fake_tensorrt(generation)), **factories})
    from tensorrt_api_check import checked_factory

    module = types.ModuleType("tensorrt")
    module.__dict__.update({k: v for k, v in vars(_real_tensorrt).items() if not k.startswith("__")})
    module.__version__ = _real_tensorrt.__version__
    for name, fake in factories.items():
        module.__dict__[name] = checked_factory(_real_tensorrt, fake, getattr(_real_tensorrt, name))
    return module


class HostMemory(DeviceMemory):
    kind = "host"

    def __init__(self, graphs=True):
        self.device, self.host, self.pointer_of, self.captures, self.graphs = {}, {}, {}, 0, graphs
        self.capturing = None  # launches recorded while a graph is being captured
        self.active = 0  # depth of `activated()`: TensorRT calls must happen inside it

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

    def activated(self):
        memory = self

        class Active:
            def __enter__(self):
                memory.active += 1

            def __exit__(self, *exc):
                memory.active -= 1

        return Active()

    def capture_graph(self, launch):
        if not self.graphs:
            return None
        self.captures += 1
        self.capturing = []
        try:
            launch()
            recorded = self.capturing
        finally:
            self.capturing = None

        def replay():
            for step in recorded:
                step()

        return replay


class FakeContext:
    imitates = "IExecutionContext"

    def __init__(self, engine):
        self._engine, self.addresses, self.shape, self.runs, self.shape_calls = engine, {}, None, 0, 0
        self.streams, self.state, self.replays = [], 0, 0  # `state` changes with every shape or address set

    def set_input_shape(self, name, shape):
        self.shape_calls += 1
        low, _, high = self._engine.profile
        if name != self._engine.names[0] or not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
            return False
        self.shape, self.state = tuple(shape), self.state + 1
        return True

    def get_tensor_shape(self, name):
        return self.shape if name == self._engine.names[0] else (self.shape[0], self._engine.classes)

    def set_tensor_address(self, name, memory):
        if name not in self._engine.names:
            return False
        self.addresses[name], self.state = memory, self.state + 1
        return True

    def _view(self, address, shape, dtype):
        count = int(np.prod(shape))
        if address in self._engine.memory.device:
            return self._engine.memory.device[address].reshape(-1)[:count].reshape(shape)
        import ctypes

        buffer = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(address)
        return np.frombuffer(buffer, dtype).reshape(shape)

    def execute_async_v3(self, stream_handle):
        memory = self._engine.memory
        if not memory.active:
            raise AssertionError("execute_async_v3 ran outside the memory provider's activated() scope")
        self.runs += 1
        self.streams.append(stream_handle)
        state, shape, addresses = self.state, self.shape, dict(self.addresses)
        input_name, output_name = self._engine.names

        def kernels(replayed=False):
            output = self._view(addresses[output_name], (shape[0], self._engine.classes), np.float32)
            if replayed and self.state != state:  # the context changed since capture: the graph is stale
                output[:] = np.nan
                return
            output[:] = self._engine.compute(self._view(addresses[input_name], shape, self._engine.input_dtype))

        if memory.capturing is not None:
            memory.capturing.append(lambda: (self._count_replay(), kernels(replayed=True)))
        else:
            kernels()
        return True

    def _count_replay(self):
        self.replays += 1


class FakeEngine:
    imitates = "ICudaEngine"

    def __init__(self, trt, memory, compute, batches=(1, 2, 4), size=4, names=("pixels", "logits"), classes=2,
                 input_dtype=np.float32):
        self._trt, self.memory, self.compute, self.names, self.classes = trt, memory, compute, names, classes
        self.input_dtype = input_dtype
        self.profile = tuple((b, 3, size, size) for b in batches)
        self.contexts = []

    num_io_tensors = 2

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return self._trt.TensorIOMode.INPUT if name == self.names[0] else self._trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self._trt.float16 if name == self.names[0] and self.input_dtype == np.float16 else self._trt.float32

    def get_tensor_profile_shape(self, name, profile_index):
        assert profile_index == 0 and name == self.names[0]
        return self.profile

    def create_execution_context(self):
        if not self.memory.active:
            raise AssertionError("create_execution_context ran outside the memory provider's activated() scope")
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


class FakeRuntime:
    """`trt.Runtime(logger)`: deserializes the plan bytes `plans` maps to an engine (None for unknown bytes)."""

    imitates = "Runtime"

    def __init__(self, logger, plans):
        self._logger, self._plans = logger, plans
        self.deserialized = []

    def deserialize_cuda_engine(self, serialized_engine):
        self.deserialized.append(bytes(serialized_engine))
        engine = self._plans.get(bytes(serialized_engine))
        if engine is not None and not engine.memory.active:
            raise AssertionError("deserialize_cuda_engine ran outside the memory provider's activated() scope")
        return engine
