"""Checks the launchers share: where a kernel can run."""

from __future__ import annotations

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


def check_output(out: torch.Tensor, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """A caller-provided output buffer must be exactly what the kernel would allocate."""
    if tuple(out.shape) != tuple(shape) or out.dtype != like.dtype or out.device != like.device \
            or not out.is_contiguous():
        raise ValueError(f"{name} must be a contiguous {like.dtype} tensor of shape {tuple(shape)} on {like.device}, "
                         f"got {out.dtype} {tuple(out.shape)} on {out.device}.")
    return out
