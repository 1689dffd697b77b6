"""Export cost and CPU latency at batch 1: PyTorch eager vs ONNX Runtime (float32, and INT8 with --calib).

    python -m export.benchmark [--preset b14 | --checkpoint CKPT] [--repeats 20] [--threads N] [--calib DIR]

Runners are timed in interleaved rounds (5 calls each) on the same face crop with the same thread count, so load on a
shared machine hits them alike; the table gives medians and each runner's ratio to PyTorch eager.
A preset gets random weights (seeded): latency does not depend on the weights.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fmca_rt.errors import FMCAError
from fmca_rt.preprocess import preprocess
from training.model import FMCANet

from .face_samples import shipped_face_crops
from .onnx import export_onnx
from .ort_session import cpu_session
from .verify import verify_onnx


def _time_interleaved(runners: dict, repeats: int, warmup: int, block: int = 5) -> dict[str, list[float]]:
    """Rounds of `block` consecutive calls per runner (a runner's idle threads settle within a block)."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_start in range(0, repeats, block):
        for name, run in runners.items():
            for _ in range(warmup if round_start == 0 else 0):
                run()
            for _ in range(min(block, repeats - round_start)):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
    return times


def benchmark(model: FMCANet, threads: int, repeats: int, warmup: int, calib: str | None, workdir: Path) -> list[str]:
    torch.set_num_threads(threads)
    rows = []
    started = time.perf_counter()
    float_path = export_onnx(model, workdir / "model.onnx", verify=False)
    export_seconds = time.perf_counter() - started
    started = time.perf_counter()
    parity = verify_onnx(float_path, model)
    verify_seconds = time.perf_counter() - started
    pixels = preprocess(shipped_face_crops()[:1], model.config.image_size, model.config.mean, model.config.std,
                        model.config.preprocessing)
    tensor = torch.from_numpy(pixels)

    def eager():
        with torch.no_grad():
            model(tensor)

    runners = {"PyTorch eager fp32": eager}
    sizes = {"PyTorch eager fp32": None}
    float_session = cpu_session(float_path, threads=threads)
    runners["ONNX Runtime fp32"] = lambda: float_session.run(None, {"pixels": pixels})
    sizes["ONNX Runtime fp32"] = float_path.stat().st_size
    if calib:
        from .quantize import quantize_int8

        int8_path, report = quantize_int8(float_path, calib)
        int8_session = cpu_session(int8_path, threads=threads)
        runners["ONNX Runtime int8"] = lambda: int8_session.run(None, {"pixels": pixels})
        sizes["ONNX Runtime int8"] = int8_path.stat().st_size
    times = _time_interleaved(runners, repeats, warmup)
    baseline = statistics.median(times["PyTorch eager fp32"])
    rows.append(f"| runner | file MB | median ms | p90 ms | speed-up vs eager |")
    rows.append("|---|---|---|---|---|")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = float(np.percentile(samples, 90))
        size = f"{sizes[name] / 1e6:.1f}" if sizes[name] else "-"
        rows.append(f"| {name} | {size} | {median * 1e3:.1f} | {p90 * 1e3:.1f} | {baseline / median:.2f}x |")
    rows.append("")
    rows.append(f"export (trace + fold + save): {export_seconds:.1f} s; parity check (batch 1 and 3, random and "
                f"faces): {verify_seconds:.1f} s, max |logit diff| {parity.max_abs_diff:.2e}")
    if calib:
        rows.extend(report.lines())
    rows.append(f"batch 1, {threads} threads, {repeats} calls per runner in interleaved rounds of 5 after {warmup} warm-up calls, "
                f"{os.cpu_count()} CPUs visible")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.benchmark", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="b14", help="model preset with random weights (default %(default)s)")
    source.add_argument("--checkpoint", help="benchmark this checkpoint instead of a preset")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--calib", help="folder of face crops: also quantize to INT8 and time it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    try:
        if args.checkpoint:
            model = FMCANet.from_checkpoint(args.checkpoint)
        else:
            torch.manual_seed(0)
            model = FMCANet.from_preset(args.preset).eval()
        with tempfile.TemporaryDirectory(prefix="fmca-bench-") as workdir:
            rows = benchmark(model, args.threads, args.repeats, args.warmup, args.calib, Path(workdir))
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
