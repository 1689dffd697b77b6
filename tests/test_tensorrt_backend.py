"""The TensorRT backend's logic around TensorRT: version/architecture check at load, name-based I/O binding,
batches split and padded to the engine's profile, buffers reused, CUDA graphs replayed per shape.

TensorRT and a GPU are absent here, so a small engine stand-in implements the name-based API over NumPy:
its "kernel" computes per-image statistics of whatever bytes sit at the bound input address, so a result is
right only if the backend bound, copied and sliced the right buffers.
"""

import ctypes
import types

import numpy as np
import pytest

from fmca_rt.backends import tensorrt as backend_module
from fmca_rt.backends.tensorrt import EngineSession, TensorRTBackend, device_index
from fmca_rt.backends.tensorrt_env import GpuInfo
from fmca_rt.backends.tensorrt_sidecar import EngineSidecar, file_sha256, write_engine
from fmca_rt.errors import BackendError, EngineError
from fmca_rt.metadata import ModelMetadata

from tensorrt_fakes import HostMemory

SIZE = 4
FAKE_TRT = types.SimpleNamespace(TensorIOMode=types.SimpleNamespace(INPUT="input", OUTPUT="output"),
                                 nptype=lambda dtype: dtype, __version__="10.3.0.30")


def statistics(pixels):
    flat = pixels.reshape(len(pixels), -1)
    return np.stack([flat.mean(axis=1), flat.max(axis=1)], axis=1)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.addresses, self.shape, self.runs, self.shape_calls = engine, {}, None, 0, 0
        self.streams = []

    def set_input_shape(self, name, shape):
        self.shape_calls += 1
        low, _, high = self.engine.profile
        if not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shape if name == "pixels" else (self.shape[0], 2)

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer

    def view(self, address, shape):
        """The memory at a bound address: a HostMemory buffer, or raw process memory (caller-owned buffers)."""
        count = int(np.prod(shape))
        if address in self.engine.memory.device:
            return self.engine.memory.device[address].reshape(-1)[:count].reshape(shape)
        return np.ctypeslib.as_array((ctypes.c_float * count).from_address(address)).reshape(shape)

    def execute_async_v3(self, stream):
        self.runs += 1
        self.streams.append(stream)
        pixels = self.view(self.addresses["pixels"], self.shape)
        self.view(self.addresses["logits"], (self.shape[0], 2))[:] = statistics(pixels)
        return True


class FakeEngine:
    def __init__(self, memory, batches=(1, 2, 4), names=("pixels", "logits")):
        self.memory, self.names = memory, names
        self.profile = tuple((b, 3, SIZE, SIZE) for b in batches)
        self.contexts = []

    num_io_tensors = 2

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "input" if name == self.names[0] else "output"

    def get_tensor_dtype(self, name):
        return np.float32

    def get_tensor_profile_shape(self, name, profile):
        assert profile == 0
        return self.profile

    def create_execution_context(self):
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


def pixels(batch, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


def test_session_binds_names_and_computes_through_the_buffers():
    memory = HostMemory()
    session = EngineSession(FAKE_TRT, FakeEngine(memory), memory, "pixels", "logits")
    assert session.batch_range == (1, 4)
    context = session._context
    assert set(context.addresses) == {"pixels", "logits"}
    for batch in (3, 1, 4, 3):
        x = pixels(batch, seed=batch)
        np.testing.assert_allclose(session.run(x), statistics(x), rtol=1e-6)
    assert memory.host["pixels"].shape == (4, 3, SIZE, SIZE)  # allocated once, for the largest batch


def test_repeated_shapes_replay_a_captured_graph():
    memory = HostMemory()
    session = EngineSession(FAKE_TRT, FakeEngine(memory), memory, "pixels", "logits")
    for seed in range(4):
        x = pixels(2, seed)
        np.testing.assert_allclose(session.run(x), statistics(x), rtol=1e-6)
    assert memory.captures == 1  # warm-up run, capture on the second call, replays after
    calls = session._context.shape_calls
    session.run(pixels(2, 9))
    assert session._context.shape_calls == calls  # an unchanged shape is not set again


def test_without_graph_support_every_call_enqueues():
    memory = HostMemory(graphs=False)
    session = EngineSession(FAKE_TRT, FakeEngine(memory), memory, "pixels", "logits")
    for seed in range(3):
        session.run(pixels(2, seed))
    assert session._context.runs == 3 and not session._use_graphs


def test_caller_owned_buffers_are_bound_for_one_run_then_the_own_ones_again():
    memory = HostMemory()
    session = EngineSession(FAKE_TRT, FakeEngine(memory), memory, "pixels", "logits")
    x, logits = pixels(3, seed=4), np.full((3, 2), np.nan, np.float32)
    session.run_bound(x.ctypes.data, logits.ctypes.data, x.shape, stream=99)
    np.testing.assert_allclose(logits, statistics(x), rtol=1e-6)
    assert session._context.streams == [99]  # the caller's stream
    y = pixels(2, seed=5)
    np.testing.assert_allclose(session.run(y), statistics(y), rtol=1e-6)  # own buffers bound again
    assert session._context.streams[-1] == memory.stream_handle


def test_an_engine_with_other_tensor_names_is_refused():
    memory = HostMemory()
    with pytest.raises(EngineError, match=r"not the model's \('pixels' -> 'logits'\); rebuild"):
        EngineSession(FAKE_TRT, FakeEngine(memory, names=("input", "output")), memory, "pixels", "logits")


def test_shape_outside_the_profile_is_a_clear_error():
    memory = HostMemory()
    session = EngineSession(FAKE_TRT, FakeEngine(memory, batches=(2, 2, 4)), memory, "pixels", "logits")
    with pytest.raises(EngineError, match="profile allows batches 2 to 4"):
        session.run(pixels(1))


# ---- the backend: sidecar check before deserializing, then batches split and padded to the profile -------
@pytest.fixture()
def engine_file(tmp_path):
    plan = b"plan bytes"
    metadata = ModelMetadata(config={"image_size": SIZE, "mean": [0.5] * 3, "std": [0.5] * 3,
                                     "class_names": ["real", "fake"], "preprocessing": "pil-bilinear"})
    sidecar = EngineSidecar(metadata=metadata, tensorrt_version="10.3.0.30", gpu_name="Orin",
                            compute_capability=(8, 7), precision="fp16", batch_profile=(2, 2, 4),
                            onnx_sha256="0" * 64, engine_sha256="", build_command="python -m export.build_engine X")
    path = tmp_path / "fmca.engine"
    path.write_bytes(plan)
    write_engine(path, plan, EngineSidecar(**{**sidecar.__dict__, "engine_sha256": file_sha256(path)}))
    return path


@pytest.fixture()
def fake_runtime(monkeypatch):
    memory = HostMemory()
    engine = FakeEngine(memory, batches=(2, 2, 4))
    deserialized = []

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            deserialized.append(plan)
            return engine

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    trt = types.SimpleNamespace(**vars(FAKE_TRT), Runtime=Runtime, Logger=Logger)
    monkeypatch.setattr(backend_module, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(backend_module, "current_gpu", lambda index: GpuInfo("Jetson AGX Orin", (8, 7)))
    monkeypatch.setattr(backend_module.DeviceMemory, "create", staticmethod(lambda kind, index: memory))
    return trt, deserialized


def test_backend_splits_and_pads_batches_to_the_profile(engine_file, fake_runtime):
    with TensorRTBackend(engine_file) as backend:
        assert backend.batch_limits == (2, 4) and backend.metadata.image_size == SIZE
        for batch in (1, 4, 11):  # 1 is padded to 2, 11 runs as 4 + 4 + 3
            x = pixels(batch, seed=batch)
            np.testing.assert_allclose(backend.infer(x), statistics(x), rtol=1e-6)
    assert fake_runtime[1] == [b"plan bytes"]


def test_backend_refuses_an_engine_from_another_tensorrt_before_loading_it(engine_file, fake_runtime):
    trt, deserialized = fake_runtime
    trt.__version__ = "10.7.0.23"
    with pytest.raises(EngineError, match=r"TensorRT 10\.3\.0\.30 \(this machine has 10\.7\.0\.23\); rebuild it on "
                                          r"this machine: python -m export\.build_engine X"):
        TensorRTBackend(engine_file).activate()
    assert deserialized == []


def test_device_strings():
    assert device_index(None) == 0 and device_index("cuda") == 0 and device_index("cuda:1") == 1
    with pytest.raises(BackendError, match="runs on a GPU"):
        device_index("cpu")


def test_infer_tensor_takes_cuda_tensors_only(engine_file, fake_runtime):
    torch = pytest.importorskip("torch")
    with TensorRTBackend(engine_file) as backend:
        with pytest.raises(BackendError, match=r"float32 torch tensor B x 3 x 4 x 4 on cuda:0"):
            backend.infer_tensor(torch.zeros(1, 3, SIZE, SIZE))
