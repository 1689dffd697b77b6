"""The forms of the model a benchmark compares: which artifact each one runs, on which backend.

Every variant runs through a `Backend` (fmca_rt.backends), the same objects the Detector uses, so the
benchmark measures what users get. `torch-fp32` is the baseline every row is compared with: PyTorch eager
float32, what a user of the published training script runs today.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends import Backend, backend_class
from ..backends.cpu_mode import FORMS as CPU_FORMS
from ..backends.torch import TorchBackend
from ..errors import ConfigError

BASELINE = "torch-fp32"


@dataclass(frozen=True)
class Variant:
    name: str
    artifact: str  # a kind in fmca_rt.bench.artifacts: checkpoint, onnx-fp32, onnx-int8-dynamic, ...
    backend: str  # a name in fmca_rt.backends.BACKENDS, "torch-bf16" (below), "openvino-bf16" or "cpu:<form>"
    summary: str
    cpu_only: bool = False


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(BASELINE, "checkpoint", "torch", "PyTorch eager, float32 (the baseline)"),
    Variant("torch-bf16", "checkpoint", "torch-bf16", "PyTorch eager under bfloat16 autocast (oneDNN on CPUs)"),
    Variant("onnxruntime-fp32", "onnx-fp32", "onnxruntime", "ONNX Runtime, float32, default session"),
    Variant("onnxruntime-int8-dynamic", "onnx-int8-dynamic", "onnxruntime",
            "ONNX Runtime, quantize_dynamic with its defaults (every MatMul and Conv)", cpu_only=True),
    Variant("onnxruntime-int8-static", "onnx-int8-static", "onnxruntime",
            "ONNX Runtime, static INT8 QDQ calibrated on face crops (python -m export.onnx --int8)",
            cpu_only=True),
    Variant("openvino-fp32", "onnx-fp32", "openvino", "OpenVINO, float32 (inference precision hint f32)",
            cpu_only=True),
    Variant("openvino-bf16", "onnx-fp32", "openvino-bf16",
            "OpenVINO, bfloat16 (hint bf16; what OpenVINO picks by itself on CPUs with bfloat16)", cpu_only=True),
    Variant("openvino-int8", "openvino-int8", "openvino",
            "OpenVINO, INT8 by NNCF's quantize with its transformer preset, calibrated on face crops; the rest "
            "float32", cpu_only=True),
    Variant("openvino-int8-bf16", "openvino-int8", "openvino-bf16",
            "the same INT8 model with the rest in bfloat16 (what OpenVINO picks by itself on CPUs with bfloat16)",
            cpu_only=True),
    Variant("cpu", "onnx-fp32", "cpu", "the Detector's CPU mode, backend='cpu' (the form it chose on this machine)",
            cpu_only=True),
    *(Variant(f"cpu-{form}", "onnx-fp32", f"cpu:{form}", f"the CPU mode's {form} form, whether chosen or not",
              cpu_only=True) for form in CPU_FORMS),
    Variant("tensorrt", "engine", "tensorrt", "TensorRT engine given with --engine"),
)}
# The CPU mode's forms one by one are for comparing them (--backends); the `cpu` row is the one chosen.
DEFAULT_VARIANTS = [name for name in VARIANTS if name != "tensorrt" and not name.startswith("cpu-")]


class TorchBFloat16Backend(TorchBackend):
    """PyTorch eager with the float32 weights, run under bfloat16 autocast (matrix products in bfloat16)."""

    name = "torch-bf16"

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16):
            logits = self._model(torch.from_numpy(pixels).to(self.device))
        return logits.float().cpu().numpy()


def select_variants(names: list[str], device: str | None) -> list[Variant]:
    """The variants to run, the baseline first; unknown names and CPU-only variants on a GPU are errors."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"Unknown benchmark backend {', '.join(unknown)}; choose from: {', '.join(VARIANTS)}.")
    on_gpu = device is not None and device.startswith("cuda")
    misplaced = [n for n in names if on_gpu and VARIANTS[n].cpu_only]
    if misplaced:
        raise ConfigError(f"{', '.join(misplaced)} run on the CPU only; leave them out with --device {device}.")
    ordered = [BASELINE] + [n for n in dict.fromkeys(names) if n != BASELINE]
    return [VARIANTS[n] for n in ordered]


def make_backend(variant: Variant, model_path: Path, device: str | None, cache_dir: Path) -> Backend:
    if variant.backend == "torch-bf16":
        return TorchBFloat16Backend(model_path, device=device)
    if variant.backend == "openvino-bf16":
        from ..backends.openvino import OpenVinoBackend

        return OpenVinoBackend(model_path, device=device, precision="bf16")
    if variant.backend.split(":")[0] == "cpu":
        from ..backends.cpu_mode import CpuBackend

        form = variant.backend.partition(":")[2] or "auto"
        return CpuBackend(model_path, cache_dir=cache_dir, form=form)
    return backend_class(variant.backend)(model_path, device=device)
