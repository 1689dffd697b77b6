"""The TensorRT backend's logic around TensorRT: version/architecture check at load, name-based I/O binding,
batches split and padded to the engine's profile, buffers reused, CUDA graphs valid only for the state they were
captured in, every TensorRT call inside the memory provider's activation, from any thread.

TensorRT and a GPU are absent here, so `tensorrt_fakes` stands in for the engine: its "kernel" computes per-image
statistics of whatever bytes sit at the bound input address, so a result is right only if the backend bound,
copied and sliced the right buffers. Where NVIDIA's bindings import (the child processes of
test_tensorrt_bindings.py) the enums are the real ones and every call is checked against the real classes.
"""

import threading

import numpy as np
import pytest

from fmca_rt.backends import tensorrt as backend_module
from fmca_rt.backends.tensorrt import EngineSession, TensorRTBackend, device_index
from fmca_rt.backends.tensorrt_env import GpuInfo
from fmca_rt.backends.tensorrt_sidecar import EngineSidecar, file_sha256, write_engine
from fmca_rt.errors import BackendError, EngineError
from fmca_rt.metadata import ModelMetadata
from tensorrt_api_check import bare, wrap
from tensorrt_fakes import FakeContext, FakeEngine, FakeRuntime, HostMemory, generations, tensorrt_api

SIZE = 4
pytestmark = pytest.mark.trt_api


def statistics(pixels):
    flat = pixels.reshape(len(pixels), -1)
    return np.stack([flat.mean(axis=1), flat.max(axis=1)], axis=1)


def pixels(batch, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(params=generations())
def trt(request):
    return tensorrt_api(request.param)


def session_for(trt, memory, **engine_options):
    engine = wrap(trt, FakeEngine(trt, memory, statistics, size=SIZE, **engine_options))
    with memory.activated():
        return EngineSession(trt, engine, memory, "pixels", "logits")


def test_session_binds_names_and_computes_through_the_buffers(trt):
    memory = HostMemory()
    session = session_for(trt, memory)
    assert session.batch_range == (1, 4)
    context = bare(session._context)
    assert set(context.addresses) == {"pixels", "logits"}
    for batch in (3, 1, 4, 3):
        x = pixels(batch, seed=batch)
        np.testing.assert_allclose(session.run(x), statistics(x), rtol=1e-6)
    assert memory.host["pixels"].shape == (4, 3, SIZE, SIZE)  # allocated once, for the largest batch


def test_a_repeated_shape_replays_the_graph_captured_for_it(trt):
    memory = HostMemory()
    session = session_for(trt, memory)
    for seed in range(5):
        x = pixels(2, seed)
        np.testing.assert_allclose(session.run(x), statistics(x), rtol=1e-6)
    context = bare(session._context)
    assert memory.captures == 1 and context.replays == 3  # plain run, plain run + capture, then replays
    calls = context.shape_calls
    session.run(pixels(2, 9))
    assert context.shape_calls == calls  # an unchanged shape is not set again


def test_a_shape_change_drops_the_graph_and_captures_again(trt):
    """The fake replays a graph with the shape and addresses of its capture and gives NaNs once the context's
    state changed since: a backend replaying a graph across shapes fails here."""
    memory = HostMemory()
    session = session_for(trt, memory)
    for batch in (2, 2, 2, 3, 2, 2, 3, 3, 3, 2):
        x = pixels(batch, seed=batch * 7 + memory.captures)
        np.testing.assert_allclose(session.run(x), statistics(x), rtol=1e-6)
    assert memory.captures == 3 and bare(session._context).replays == 2


def test_caller_owned_buffers_drop_the_graph_too(trt):
    memory = HostMemory()
    session = session_for(trt, memory)
    for seed in range(3):
        session.run(pixels(3, seed))
    x, logits = pixels(3, seed=4), np.full((3, 2), np.nan, np.float32)
    with memory.activated():
        session.run_bound(x.ctypes.data, logits.ctypes.data, x.shape, stream=99)
    np.testing.assert_allclose(logits, statistics(x), rtol=1e-6)
    context = bare(session._context)
    assert context.streams[-1] == 99  # the caller's stream
    y = pixels(3, seed=5)
    np.testing.assert_allclose(session.run(y), statistics(y), rtol=1e-6)  # own buffers bound again, no stale graph
    assert context.streams[-1] == memory.stream_handle


def test_without_graph_support_every_call_enqueues(trt):
    memory = HostMemory(graphs=False)
    session = session_for(trt, memory)
    for seed in range(3):
        session.run(pixels(2, seed))
    assert bare(session._context).runs == 3 and not session._use_graphs


def test_an_engine_with_other_tensor_names_is_refused(trt):
    with pytest.raises(EngineError, match=r"not the model's \('pixels' -> 'logits'\); rebuild"):
        session_for(trt, HostMemory(), names=("input", "output"))


def test_a_refused_address_is_an_error_not_a_silent_wrong_buffer(trt):
    memory = HostMemory()
    engine = FakeEngine(trt, memory, statistics, size=SIZE)
    engine.create_execution_context = lambda: _RefusingContext(engine)
    with pytest.raises(EngineError, match="refused the device address of 'logits'"):
        EngineSession(trt, wrap(trt, engine), memory, "pixels", "logits")


class _RefusingContext(FakeContext):
    def set_tensor_address(self, name, memory):
        return name != "logits" and super().set_tensor_address(name, memory)


def test_shape_outside_the_profile_is_a_clear_error(trt):
    session = session_for(trt, HostMemory(), batches=(2, 2, 4))
    with pytest.raises(EngineError, match="profile allows batches 2 to 4"):
        session.run(pixels(1))


# ---- the backend: sidecar check before deserializing, then batches split and padded to the profile -------
@pytest.fixture()
def engine_file(tmp_path, trt):
    plan = b"plan bytes"
    metadata = ModelMetadata(config={"image_size": SIZE, "mean": [0.5] * 3, "std": [0.5] * 3,
                                     "class_names": ["real", "fake"], "preprocessing": "pil-bilinear"})
    sidecar = EngineSidecar(metadata=metadata, tensorrt_version=trt.__version__, gpu_name="Orin",
                            compute_capability=(8, 7), precision="fp16", batch_profile=(2, 2, 4),
                            onnx_sha256="0" * 64, engine_sha256="", build_command="python -m export.build_engine X")
    path = tmp_path / "fmca.engine"
    path.write_bytes(plan)
    write_engine(path, plan, EngineSidecar(**{**sidecar.__dict__, "engine_sha256": file_sha256(path)}))
    return path


@pytest.fixture()
def runtime(monkeypatch, trt):
    """The backend's `tensorrt`: a runtime deserializing b"plan bytes" to a fake engine on HostMemory."""
    memory = HostMemory()
    runtimes = []

    def make_runtime(logger):
        runtimes.append(FakeRuntime(logger, {b"plan bytes": FakeEngine(api, memory, statistics, (2, 2, 4), SIZE)}))
        return runtimes[-1]

    api = tensorrt_api(int(trt.__version__.split(".")[0]), Runtime=make_runtime)
    monkeypatch.setattr(backend_module, "import_tensorrt", lambda: api)
    monkeypatch.setattr(backend_module, "current_gpu", lambda index: GpuInfo("Jetson AGX Orin", (8, 7)))
    monkeypatch.setattr(backend_module.DeviceMemory, "create", staticmethod(lambda kind, index: memory))
    return api, runtimes, memory


def test_backend_splits_and_pads_batches_to_the_profile(engine_file, runtime):
    with TensorRTBackend(engine_file) as backend:
        assert backend.batch_limits == (2, 4) and backend.metadata.image_size == SIZE
        for batch in (1, 4, 11):  # 1 is padded to 2, 11 runs as 4 + 4 + 3
            x = pixels(batch, seed=batch)
            np.testing.assert_allclose(backend.infer(x), statistics(x), rtol=1e-6)
    assert [r.deserialized for r in runtime[1]] == [[b"plan bytes"]]


def test_backend_infers_from_other_threads_inside_the_activation(engine_file, runtime):
    """A server calls from worker threads: each call activates the device there (the fake engine refuses to run
    outside `activated()`), and concurrent calls do not mix their buffers."""
    memory = runtime[2]
    results, errors = {}, []
    with TensorRTBackend(engine_file) as backend:
        def work(seed):
            try:
                x = pixels(3 + seed % 2, seed)
                results[seed] = (backend.infer(x), statistics(x))
            except Exception as error:  # reported below with the thread's seed
                errors.append((seed, error))

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors and len(results) == 8 and memory.active == 0
    for got, expected in results.values():
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_backend_refuses_an_engine_from_another_tensorrt_before_loading_it(engine_file, runtime):
    api, runtimes, _ = runtime
    built_with = api.__version__
    api.__version__ = "10.7.0.23"
    with pytest.raises(EngineError, match=rf"TensorRT {built_with} \(this machine has 10\.7\.0\.23\); rebuild it on "
                                          r"this machine: python -m export\.build_engine X"):
        TensorRTBackend(engine_file).activate()
    assert runtimes == []


def test_device_strings():
    assert device_index(None) == 0 and device_index("cuda") == 0 and device_index("cuda:1") == 1
    with pytest.raises(BackendError, match="runs on a GPU"):
        device_index("cpu")


def test_infer_tensor_takes_cuda_tensors_only(engine_file, runtime):
    torch = pytest.importorskip("torch")
    with TensorRTBackend(engine_file) as backend:
        with pytest.raises(BackendError, match=r"float32 torch tensor B x 3 x 4 x 4 on cuda:0"):
            backend.infer_tensor(torch.zeros(1, 3, SIZE, SIZE))
