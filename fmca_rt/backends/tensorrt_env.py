"""What a TensorRT engine depends on: the TensorRT library and the GPU. Imported lazily, failing in one sentence.

Both the engine builder (`export.build_engine`) and the runtime backend ask here, so a missing library or a
missing GPU reads the same wherever it is hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DependencyError, DeviceError

TENSORRT_HINT = ("pip install 'fmca-rt[tensorrt]' on x86-64 Linux or Windows; on Jetson use the TensorRT that "
                 "JetPack installs (sudo apt install nvidia-jetpack)")
CUDA_HINT = ("install a CUDA build of torch (pip install torch on Linux x86-64), or pycuda where the CUDA toolkit "
             "is installed (pip install pycuda; JetPack has the toolkit)")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise DependencyError(f"This needs NVIDIA TensorRT, but 'tensorrt' is not installed: {TENSORRT_HINT}.") from None
    return tensorrt


def import_tensorrt_plugin():
    """`tensorrt.plugin` with ahead-of-time kernels (`aot_impl`), which TensorRT 10.9 introduced."""
    trt = import_tensorrt()
    try:
        import tensorrt.plugin as trtp
    except ImportError:
        trtp = None
    if trtp is None or not hasattr(trtp, "aot_impl"):
        raise DependencyError(f"TensorRT {trt.__version__} cannot serve the fmca:: Triton-kernel plugins, which need "
                              "ahead-of-time Python plugins (tensorrt.plugin.aot_impl, TensorRT 10.9 or newer): "
                              "upgrade TensorRT (JetPack 7 on Jetson), or build without --plugins.") from None
    return trtp


def version_triple(version: str) -> tuple[int, int, int]:
    """'10.3.0.26' -> (10, 3, 0); engines are tied to major.minor.patch, not to the build number."""
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    if not parts:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return tuple(parts + [0] * (3 - len(parts)))


def is_strongly_typed_only(trt) -> bool:
    """TensorRT 11 removed the precision builder flags and builds strongly typed networks only.

    Decided by the API present, not by the version number, so a 10.x that already dropped the flag is handled.
    """
    return not hasattr(trt.BuilderFlag, "FP16")


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @property
    def arch(self) -> int:
        """The SM number kernels are compiled for: (8, 7) -> 87."""
        major, minor = self.compute_capability
        return major * 10 + minor

    def describe(self) -> str:
        return f"{self.name} (compute capability {self.compute_capability[0]}.{self.compute_capability[1]})"


def current_gpu(device: int = 0) -> GpuInfo:
    """The GPU TensorRT will build for or run on, asked through pycuda or, failing that, torch."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        return _gpu_from_torch(device)
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as error:
        raise DeviceError(f"The CUDA driver cannot be used ({error}); TensorRT needs an NVIDIA GPU with its "
                          "driver installed.") from None
    if device >= count:
        raise DeviceError(_no_gpu_message(device, count))
    gpu = cuda.Device(device)
    return GpuInfo(gpu.name(), tuple(gpu.compute_capability()))


def cuda_driver_version() -> int | None:
    """cuDriverGetVersion (12060 for CUDA 12.6), from the driver library itself (no toolkit, pycuda or torch
    needed); None where no NVIDIA driver is installed."""
    import ctypes
    import sys

    try:
        driver = ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    return version.value if driver.cuDriverGetVersion(ctypes.byref(version)) == 0 else None


def _gpu_from_torch(device: int) -> GpuInfo:
    try:
        import torch
    except ImportError:
        raise DependencyError(f"Talking to the GPU needs pycuda or torch, and neither is installed: {CUDA_HINT}.") from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device >= count:
        raise DeviceError(_no_gpu_message(device, count))
    return GpuInfo(torch.cuda.get_device_name(device), tuple(torch.cuda.get_device_capability(device)))


def _no_gpu_message(device: int, count: int) -> str:
    if count == 0:
        return ("No NVIDIA GPU is visible to CUDA here; TensorRT engines are built and run on the GPU they are for "
                "(use the onnxruntime backend on a CPU).")
    return f"GPU {device} does not exist; CUDA sees {count} GPU(s), numbered from 0."
