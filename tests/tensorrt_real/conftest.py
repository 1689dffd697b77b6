"""Tests that need NVIDIA's real TensorRT Python bindings. `test_tensorrt_bindings.py` runs them in a child process
per TensorRT version (the wheel from the registry, stub native libraries); elsewhere they are skipped."""

import os
from pathlib import Path

import pytest

try:
    import tensorrt
except ImportError:
    tensorrt = None

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if tensorrt is not None:
        return
    skip = pytest.mark.skip(reason="needs NVIDIA's TensorRT bindings: test_tensorrt_bindings.py runs these in a "
                                   "child process per TensorRT version")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def trt():
    return tensorrt


@pytest.fixture(scope="session")
def generation(trt):
    return int(trt.__version__.split(".")[0])


@pytest.fixture(scope="session")
def tiny_plugin_onnx(tmp_path_factory):
    """The tiny model at 56 px exported with the fmca plugin nodes (from the parent process when it made one)."""
    if os.environ.get("FMCA_TEST_TINY_PLUGIN_ONNX"):
        return Path(os.environ["FMCA_TEST_TINY_PLUGIN_ONNX"])
    from tensorrt_models import export_tiny_plugin_onnx

    return export_tiny_plugin_onnx(tmp_path_factory.mktemp("plugins") / "tiny.plugins.onnx")


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory):
    """The kernels `python -m kernels.aot` compiles for Orin (sm_87) and Hopper (sm_90) at both head sizes."""
    pytest.importorskip("triton")
    from kernels.aot import compile_kernels

    out = tmp_path_factory.mktemp("aot")
    compile_kernels((87, 90), out, ("fp32", "fp16"), (32, 96))
    return out


@pytest.fixture(scope="session")
def registry(trt, kernel_dir):
    """tensorrt.plugin keeps registrations for the process: the recording registry stays for the whole run."""
    if not hasattr(trt, "QuickPluginCreationRequest"):
        pytest.skip(f"TensorRT {trt.__version__} has no ahead-of-time Python plugins (10.9+)")
    from export.trt_plugin_math import load_manifest
    from export.trt_plugins import register_plugins
    from tensorrt_real.plugin_driver import ARCH, RecordingRegistry

    recording = RecordingRegistry()
    trt.get_plugin_registry = lambda: recording  # libnvinfer's registry: null with the stub library
    register_plugins(load_manifest(kernel_dir), ARCH)
    return recording
