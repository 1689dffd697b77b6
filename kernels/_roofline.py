"""The work and the memory traffic of the two kernels, and a timing's share of what the GPU can do.

The roofline is measured on the GPU itself (`kernels.gpucheck`): memory bandwidth from a device-to-device
copy, compute from a large matrix product in the same dtype. Spec-sheet peaks are higher than what any kernel
reaches; a measured roofline says how far a kernel is from what this GPU really delivers.
"""

from __future__ import annotations

from dataclasses import dataclass


def attention_flops(batch: int, heads: int, n_p: int, n_f: int, head_dim: int) -> float:
    """Both directions, each 4 * B * heads * N_q * N_k * D (two products of 2 flops per multiply-add)."""
    return 2 * 4.0 * batch * heads * n_p * n_f * head_dim


def attention_bytes(batch: int, heads: int, n_p: int, n_f: int, head_dim: int, element_size: int) -> int:
    """What the fused kernel must move at least: qp, kp, vp, ap (N_p tokens) and qf, kf, vf, af (N_f tokens),
    each read or written once."""
    return 4 * (n_p + n_f) * batch * heads * head_dim * element_size


def dwt_bytes(batch: int, channels: int, height: int, width: int, element_size: int) -> int:
    """The input read once and the 4 bands (as many elements for even sizes) written once."""
    out = batch * 4 * channels * ((height + 1) // 2) * ((width + 1) // 2)
    return element_size * (batch * channels * height * width + out)


@dataclass(frozen=True)
class Roofline:
    bandwidth: float  # bytes per second a device copy reaches
    flops: dict  # dtype name -> flop/s a large matrix product reaches


def shares(seconds: float, flops: float, moved: int, roofline: Roofline, dtype: str) -> dict:
    """Achieved rates and their shares of the measured roofline; `of_roofline` is the time the roofline allows
    (the larger of the compute and the memory bound) over the time taken."""
    peak_flops = roofline.flops.get(dtype)
    result = {"tflops": flops / seconds / 1e12, "gbps": moved / seconds / 1e9,
              "of_memory": moved / seconds / roofline.bandwidth}
    bound = moved / roofline.bandwidth
    if peak_flops:
        result["of_compute"] = flops / seconds / peak_flops
        bound = max(bound, flops / peak_flops)
    result["of_roofline"] = bound / seconds
    return result
