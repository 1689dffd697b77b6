"""Checks the launchers share: where a kernel can run, on which device, into which output buffer."""

from __future__ import annotations

import contextlib

import torch
from triton.runtime.interpreter import InterpretedFunction


def is_interpreted(kernel) -> bool:
    """True when `kernel` runs in Triton's CPU interpreter (decorated under TRITON_INTERPRET=1, or wrapped)."""
    return isinstance(kernel, InterpretedFunction)


def require_kernel_device(kernel, *tensors: torch.Tensor) -> None:
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"All inputs must be on one device, got {', '.join(sorted(map(str, devices)))}.")
    device = devices.pop()
    if device.type != "cuda" and not is_interpreted(kernel):
        raise ValueError(f"The Triton kernels run on CUDA tensors, got {device} (CPU tensors run only in "
                         "Triton's interpreter, TRITON_INTERPRET=1; use kernels.haar_dwt / "
                         "kernels.sfcm_attention for the PyTorch path on the CPU).")


def kernel_arch(device: torch.device) -> int:
    """The compute capability of a CUDA device as an int (87, 90); 90 for CPU tensors (Triton's interpreter)."""
    if device.type != "cuda":
        return 90
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def on_device(device: torch.device):
    """Triton launches on the current CUDA device: make it the tensors' device for the launch."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def check_output(out: torch.Tensor, name: str, template: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A caller-provided output buffer must be exactly what the kernel would allocate: `template`'s shape and
    strides (a tensor on the meta device will do), `like`'s dtype and device."""
    if (out.shape != template.shape or out.stride() != template.stride() or out.dtype != like.dtype
            or out.device != like.device):
        layout = "contiguous" if template.is_contiguous() else f"strides {template.stride()}"
        raise ValueError(f"{name} must be a {like.dtype} tensor of shape {tuple(template.shape)} with {layout} on "
                         f"{like.device}, got {out.dtype} {tuple(out.shape)} with strides {out.stride()} on "
                         f"{out.device}.")
    return out
