"""Times the Triton kernels against the PyTorch path on a GPU and prints a table (GPU only).

    python -m kernels.bench [--batch 1 64] [--dtype float16 float32] [--markdown benchmarks/kernels-GPU.md]

Each row is timed twice with `triton.testing`: `do_bench` (launches from Python) and `do_bench_cudagraph`
(replayed from a CUDA graph, without launch overhead). Haar DWT: the eager reference and the kernel, with
achieved bandwidth (bytes read + written per second) as a share of a plain device copy of the same bytes.
SFCM attention: `scaled_dot_product_attention` called twice (the reference) and the fused kernel, with
TFLOP/s (4 * B * heads * N_q * N_k * D per direction). Outputs are checked against the references first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def attention_flops(batch: int, heads: int, n_p: int, n_f: int, head_dim: int) -> float:
    """Both directions: (patch queries x frequency keys) + (frequency queries x patch keys), 4 flops per MAC pair."""
    return 2 * 4.0 * batch * heads * n_p * n_f * head_dim


def dwt_bytes(x: torch.Tensor) -> int:
    """Bytes the DWT must move: the input once and the output (as many elements for even sizes) once."""
    batch, channels, height, width = x.shape
    return x.element_size() * (x.numel() + batch * 4 * channels * ((height + 1) // 2) * ((width + 1) // 2))


def time_ms(fn: Callable[[], object]) -> tuple[float, float]:
    """Median milliseconds per call: launched from Python, and replayed from a CUDA graph."""
    import triton.testing

    fn()
    torch.cuda.synchronize()
    return (triton.testing.do_bench(fn, return_mode="median"),
            triton.testing.do_bench_cudagraph(fn, return_mode="median"))


def dwt_rows(batch: int, dtype: torch.dtype, size: int) -> list[dict]:
    from kernels import haar_dwt_reference, haar_dwt_triton

    x = torch.randn(batch, 3, size, size, device="cuda").to(dtype)
    torch.testing.assert_close(haar_dwt_triton(x), haar_dwt_reference(x, *_imagenet()), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])
    moved = dwt_bytes(x)
    source = torch.empty(moved // 2 // x.element_size(), dtype=dtype, device="cuda")
    target = torch.empty_like(source)
    copy = time_ms(lambda: target.copy_(source))
    rows = []
    for name, fn in (("copy (same bytes)", lambda: target.copy_(source)),
                     ("eager reference", lambda: haar_dwt_reference(x, *_imagenet())),
                     ("triton kernel", lambda: haar_dwt_triton(x))):
        timings = copy if name.startswith("copy") else time_ms(fn)
        rows.append({"op": "haar_dwt", "case": f"B={batch} 3x{size}x{size} {_short(dtype)}", "impl": name,
                     "ms": timings, "rate": [moved / t / 1e6 for t in timings], "unit": "GB/s",
                     "of_copy": [c / t for c, t in zip(copy, timings)]})
    return rows


def attention_rows(batch: int, dtype: torch.dtype, heads: int, tokens: tuple[int, int], head_dim: int) -> list[dict]:
    from kernels import sfcm_attention_reference, sfcm_attention_triton

    n_p, n_f = tokens
    tensors = [torch.randn(batch, heads, n, head_dim, device="cuda", dtype=dtype) for n in (n_p, n_f, n_f, n_f, n_p, n_p)]
    for ours, expected in zip(sfcm_attention_triton(*tensors), sfcm_attention_reference(*tensors)):
        torch.testing.assert_close(ours, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    flops = attention_flops(batch, heads, n_p, n_f, head_dim)
    rows = []
    for name, fn in (("2x scaled_dot_product_attention", lambda: sfcm_attention_reference(*tensors)),
                     ("triton fused kernel", lambda: sfcm_attention_triton(*tensors))):
        timings = time_ms(fn)
        rows.append({"op": "sfcm_attention", "case": f"B={batch} h={heads} N={n_p}/{n_f} D={head_dim} {_short(dtype)}",
                     "impl": name, "ms": timings, "rate": [flops / t / 1e9 for t in timings], "unit": "TFLOP/s"})
    baseline = rows[0]["ms"]
    for row in rows:
        row["speedup"] = [b / t for b, t in zip(baseline, row["ms"])]
    return rows


def format_table(rows: Sequence[dict]) -> str:
    header = ("| op | case | implementation | ms (launch) | ms (CUDA graph) | rate (launch) | rate (graph) "
              "| vs baseline (graph) |")
    lines = [header, "|" + "---|" * 8]
    for row in rows:
        ratio = row.get("speedup", row.get("of_copy"))
        ratio_text = f"{ratio[1]:.2f}x" if "speedup" in row else f"{ratio[1]:.0%} of copy"
        lines.append(f"| {row['op']} | {row['case']} | {row['impl']} | {row['ms'][0] * 1e3:.1f} us "
                     f"| {row['ms'][1] * 1e3:.1f} us | {row['rate'][0]:.1f} {row['unit']} "
                     f"| {row['rate'][1]:.1f} {row['unit']} | {ratio_text} |")
    return "\n".join(lines)


def _imagenet():
    from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD

    return IMAGENET_MEAN, IMAGENET_STD


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--dtype", nargs="+", default=["float16", "float32"], choices=sorted(DTYPES))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=96)
    parser.add_argument("--tokens", type=int, nargs=2, default=[256, 256], metavar=("N_P", "N_F"))
    parser.add_argument("--markdown", help="also write the table, with the GPU and versions, to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: python -m kernels.bench times the kernels on an NVIDIA GPU, and torch sees no CUDA device "
              "here; it has not run.", file=sys.stderr)
        return 1
    import triton

    rows = []
    for dtype in (DTYPES[d] for d in args.dtype):
        for batch in args.batch:
            rows += dwt_rows(batch, dtype, args.image_size)
            rows += attention_rows(batch, dtype, args.heads, tuple(args.tokens), args.head_dim)
    device = torch.cuda.get_device_name()
    heading = (f"{device}, torch {torch.__version__}, triton {triton.__version__}; "
               f"`python -m kernels.bench {' '.join(argv if argv is not None else sys.argv[1:])}`")
    table = format_table(rows)
    print(heading + "\n\n" + table)
    if args.markdown:
        try:
            with open(args.markdown, "w", encoding="utf-8") as file:
                file.write(f"# Kernel benchmark\n\n{heading}\n\n{table}\n")
        except OSError as error:
            print(f"error: cannot write {args.markdown}: {error.strerror or error}.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
