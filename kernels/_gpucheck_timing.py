"""`kernels.gpucheck`'s timings: the measured roofline, the attention kernel against PyTorch's attention pinned to
each backend and against one call on both directions stacked, and the DWT against a device copy of its bytes.

Times are medians from `triton.testing`: `do_bench` launches from Python and empties L2 before every timed run;
`do_bench_cudagraph` replays a CUDA graph (no launch overhead; L2 stays warm between replays).
"""

from __future__ import annotations

import torch

from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_reference

from ._roofline import Roofline, attention_bytes, attention_flops, dwt_bytes, shares
from ._tiles import attention_tiles

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ATTENTION_SHAPE = {"heads": 8, "n_p": 256, "n_f": 256, "head_dim": 96}  # b14 / s14-like at 224 px: 16 x 16 tokens
BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")


def seconds(fn, graph: bool) -> float:
    import triton.testing

    fn()
    torch.cuda.synchronize()
    milliseconds = (triton.testing.do_bench_cudagraph(fn, return_mode="median") if graph
                    else triton.testing.do_bench(fn, return_mode="median"))
    return milliseconds / 1e3


def measured_roofline() -> Roofline:
    """Copy bandwidth (1 GiB device to device) and matrix-product flop/s per dtype (8192^3; float32 without TF32)."""
    source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    bandwidth = 2 * source.numel() / seconds(lambda: target.copy_(source), graph=False)
    flops = {}
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for name, dtype in DTYPES.items():
            a, b = (torch.randn(8192, 8192, device="cuda", dtype=dtype) for _ in range(2))
            flops[name] = 2 * 8192 ** 3 / seconds(lambda: a @ b, graph=False)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return Roofline(bandwidth=bandwidth, flops=flops)


def _pinned(backend: str, fn):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def run():
        with sdpa_kernel(getattr(SDPBackend, backend)):
            return fn()
    return run


def attention_rows(arch: int, roofline: Roofline, batches=(1, 64)) -> list[dict]:
    from . import sfcm_attention_triton

    shape = ATTENTION_SHAPE
    rows = []
    for name, dtype in DTYPES.items():
        for batch in batches:
            tensors = [torch.randn(batch, shape["heads"], n, shape["head_dim"], device="cuda", dtype=dtype)
                       for n in (shape["n_p"], shape["n_f"], shape["n_f"], shape["n_f"], shape["n_p"], shape["n_p"])]
            qp, kf, vf, qf, kp, vp = tensors
            stacked = [torch.cat(pair) for pair in ((qp, qf), (kf, kp), (vf, vp))]  # needs N_p == N_f
            candidates = {f"triton ({path} tiles)": lambda tiles=attention_tiles(dtype, arch, path == "aot"):
                          sfcm_attention_triton(*tensors, tiles=tiles) for path in ("jit", "aot")}
            for backend in BACKENDS:
                candidates[f"2 x sdpa {backend.split('_')[0].lower()}"] = _pinned(
                    backend, lambda: sfcm_attention_reference(*tensors))
            candidates["1 x sdpa on both directions stacked"] = (
                lambda: torch.nn.functional.scaled_dot_product_attention(*stacked))
            work = attention_flops(batch, shape["heads"], shape["n_p"], shape["n_f"], shape["head_dim"])
            moved = attention_bytes(batch, shape["heads"], shape["n_p"], shape["n_f"], shape["head_dim"],
                                    tensors[0].element_size())
            case = f"{name} B={batch} heads={shape['heads']} N={shape['n_p']}/{shape['n_f']} D={shape['head_dim']}"
            rows += _timed("sfcm_attention", case, candidates, work, moved, roofline, name, graph_too=True)
    return rows


def dwt_rows(roofline: Roofline, batches=(1, 64), size: int = 224) -> list[dict]:
    from . import haar_dwt_triton

    rows = []
    for name, dtype in DTYPES.items():
        for batch in batches:
            x = torch.randn(batch, 3, size, size, device="cuda").to(dtype)
            moved = dwt_bytes(batch, 3, size, size, x.element_size())
            source = torch.empty(moved // 2, dtype=torch.uint8, device="cuda")
            target = torch.empty_like(source)
            candidates = {"copy of the same bytes": lambda: target.copy_(source),
                          "triton kernel": lambda: haar_dwt_triton(x),
                          "eager reference": lambda: haar_dwt_reference(x, IMAGENET_MEAN, IMAGENET_STD)}
            rows += _timed("haar_dwt", f"{name} B={batch} 3x{size}x{size}", candidates, 0.0, moved, roofline, name,
                           graph_too=False)
    return rows


def _timed(op: str, case: str, candidates: dict, work: float, moved: int, roofline: Roofline, dtype: str,
           graph_too: bool) -> list[dict]:
    rows = []
    for impl, fn in candidates.items():
        row = {"op": op, "case": case, "impl": impl}
        try:
            row["launch_s"] = seconds(fn, graph=False)
            row["launch"] = shares(row["launch_s"], work, moved, roofline, dtype)
            if graph_too:
                row["graph_s"] = seconds(fn, graph=True)
                row["graph"] = shares(row["graph_s"], work, moved, roofline, dtype)
        except RuntimeError as error:  # a backend that does not take this dtype or shape
            row["unsupported"] = str(error).strip().splitlines()[0][:200]
        rows.append(row)
    return rows
