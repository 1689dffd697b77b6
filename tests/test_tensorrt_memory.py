"""Device memory providers for TensorRT: the device's context is current on whichever thread uses them.

pycuda's driver API (no GPU here) is stood in for by a module that keeps a context stack per thread, as CUDA does,
and refuses any call made without the device's context current on the calling thread."""

import sys
import threading
import types

import numpy as np
import pytest

from fmca_rt.backends.tensorrt_memory import DeviceMemory, PycudaMemory, TorchMemory


def fake_pycuda():
    stacks = threading.local()

    def stack():
        if not hasattr(stacks, "contexts"):
            stacks.contexts = []
        return stacks.contexts

    class Context:
        def __init__(self, device):
            self.device, self.detached = device, False

        def push(self):
            stack().append(self)

        def pop(self):
            stack().pop()

        def detach(self):
            self.detached = True

    def needs_context(what):
        if not stack() or stack()[-1].device != driver.expected_device:
            raise AssertionError(f"{what} on {threading.current_thread().name} without device "
                                 f"{driver.expected_device}'s context current")

    class Device:
        def __init__(self, index):
            self.index = index

        def retain_primary_context(self):
            driver.contexts.append(Context(self.index))
            return driver.contexts[-1]

    class Stream:
        def __init__(self):
            needs_context("creating a stream")
            self.handle = 1234

        def synchronize(self):
            needs_context("synchronize")

    class Allocation(int):
        def free(self):
            needs_context("free")

    def pagelocked_empty(shape, dtype):
        needs_context("pagelocked_empty")
        return np.zeros(shape, dtype)

    def mem_alloc(size):
        needs_context("mem_alloc")
        return Allocation(0x7000 + len(driver.contexts))

    def copy(destination, source, stream):
        needs_context("an async copy")

    driver = types.SimpleNamespace(
        init=lambda: None, Device=Device, Stream=Stream, Context=Context, Error=RuntimeError, contexts=[],
        pagelocked_empty=pagelocked_empty, mem_alloc=mem_alloc, memcpy_htod_async=copy, memcpy_dtoh_async=copy,
        expected_device=1, stack=stack)
    return driver


@pytest.fixture()
def pycuda(monkeypatch):
    driver = fake_pycuda()
    package = types.ModuleType("pycuda")
    package.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return driver


def test_pycuda_memory_activates_the_device_around_every_use_on_any_thread(pycuda):
    memory = DeviceMemory.create("pycuda", 1)
    assert isinstance(memory, PycudaMemory) and pycuda.stack() == []  # nothing left current on the creating thread
    failures = []

    def serve():
        try:
            host, _ = memory.allocate("pixels", (2, 3), np.float32)
            memory.upload("pixels", host.nbytes)
            memory.download("pixels", host.nbytes)
            memory.synchronize()
            with memory.activated():  # what the backend wraps TensorRT's own calls in
                assert pycuda.stack()[-1].device == 1
            assert pycuda.stack() == []
        except AssertionError as error:
            failures.append(error)

    worker = threading.Thread(target=serve, name="server-worker")
    worker.start()
    worker.join()
    assert failures == []
    memory.close()
    assert pycuda.contexts[0].detached and pycuda.stack() == []


def test_torch_memory_activates_its_own_device():
    torch = pytest.importorskip("torch")
    memory = TorchMemory.__new__(TorchMemory)  # no GPU here: only the device choice is checked
    memory._torch, memory._device = torch, torch.device("cuda", 1)
    activation = memory.activated()
    assert isinstance(activation, torch.cuda.device) and activation.idx == 1


def test_unknown_provider_names_the_choices():
    from fmca_rt.errors import DeviceError

    with pytest.raises(DeviceError, match="choose one of: auto, pycuda, torch"):
        DeviceMemory.create("cupy")


def test_the_tensorrt_extra_installs_with_only_a_driver():
    """pycuda ships only as source that needs the CUDA toolkit to build: it must not be a requirement of the extra."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["tensorrt"]
    assert [requirement.split(">")[0].split("=")[0] for requirement in extra] == ["tensorrt"]


def test_without_torch_or_pycuda_the_error_says_how_to_get_device_memory(monkeypatch):
    from fmca_rt.errors import DependencyError

    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(DependencyError, match=r"needs pycuda or torch: install a CUDA build of torch \(pip install "
                                              r"torch on Linux x86-64\), or pycuda where the CUDA toolkit"):
        DeviceMemory.create("auto")


def test_the_driver_version_comes_from_the_driver_library_alone(monkeypatch):
    import ctypes

    from fmca_rt.backends.tensorrt_env import cuda_driver_version

    class Driver:
        def cuDriverGetVersion(self, pointer):
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_int)).contents.value = 13000
            return 0

    opened = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name: opened.append(name) or Driver())
    assert cuda_driver_version() == 13000 and opened == ["libcuda.so.1"]

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    assert cuda_driver_version() is None
