"""What a benchmark ran on: CPU model and features, cores, GPU, library versions and the load around it.

Timings on a shared machine mean little without the load average beside them, so it is recorded too.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

from ..backends.onnxruntime_cpu import usable_cores

# CPU features that decide which fast paths the libraries can take (INT8 dot products, bfloat16, AMX).
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd")
LIBRARIES = ("numpy", "opencv-python-headless", "torch", "onnxruntime", "onnxruntime-gpu", "onnx", "openvino", "nncf",
             "tensorrt")


def _cpuinfo() -> tuple[str, list[str]]:
    """(model name, flags) from /proc/cpuinfo on Linux; the platform's processor string elsewhere."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.split()
    except OSError:
        pass
    return model, flags


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def gpu_name() -> str | None:
    """The first CUDA GPU's name when PyTorch is already loaded and sees one (never imports torch itself)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def cpu_description() -> tuple[str, list[str]]:
    """(CPU model name, the CPU_FEATURES it has)."""
    model, flags = _cpuinfo()
    return model, [f for f in CPU_FEATURES if f in flags]


def machine_info() -> dict:
    model, features = cpu_description()
    return {
        "cpu": model,
        "cpu_features": features,
        "cores": usable_cores(),
        "os": f"{platform.system()} {platform.release()}",
        "gpu": gpu_name(),
        "libraries": library_versions(),
    }
