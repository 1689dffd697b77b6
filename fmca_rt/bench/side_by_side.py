"""`fmca-rt benchmark --model mine.onnx`: an ONNX classifier (imported or exported) beside FMCA-Net.

    fmca-rt benchmark --model mine.onnx                     # vs the paper's model (b14), random weights
    fmca-rt benchmark --model mine.onnx --compare tiny --backends onnxruntime-fp32,cpu --batch 1,8

Both models run through the same backends (ONNX Runtime float32, the Detector's CPU mode) on the same face
crops, each prepared as its own metadata says (size, resize, normalization). The rows take turns in every
round, so a machine that gets busier slows them alike; the table gives the median time per batch and per
crop and each row's time over FMCA-Net's on the same backend and batch size.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from ..backends import backend_class
from ..preprocess import preprocess

SIDE_BY_SIDE_BACKENDS = {"onnxruntime-fp32": "onnxruntime", "cpu": "cpu"}
DEFAULT_COMPARE = "b14"


def machine_line() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return f"{platform.machine()} {platform.processor() or platform.system()}, {cores} usable cores, load average {load}"


def _backends(requested: str) -> list[str]:
    names = [n.strip() for n in requested.split(",") if n.strip() in SIDE_BY_SIDE_BACKENDS]
    return names or list(SIDE_BY_SIDE_BACKENDS)


def run_side_by_side(model: Path, fmca_onnx: Path, fmca_name: str, crops: list[np.ndarray], settings,
                     backends: str, cache_dir: Path) -> dict:
    """Time both ONNX files on each backend and batch size, interleaved; the result as a dict with rows."""
    contenders = []
    for label, path in ((model.name, model), (fmca_name, fmca_onnx)):
        for variant in _backends(backends):
            cls = backend_class(SIDE_BY_SIDE_BACKENDS[variant])
            backend = cls(path, cache_dir=cache_dir) if variant == "cpu" else cls(path, device="cpu")
            contenders.append((label, variant, backend.activate()))
    times = {}
    try:
        for batch in settings.batches:
            batch_crops = [crops[i % len(crops)] for i in range(batch)]
            pixels = {id(b): preprocess(batch_crops, b.metadata.image_size, b.metadata.mean, b.metadata.std,
                                        b.metadata.preprocessing) for _, _, b in contenders}
            for _, _, backend in contenders:
                for _ in range(settings.warmup):
                    backend.infer(pixels[id(backend)])
            per_round = max(settings.iters // settings.rounds, 1)
            for _ in range(settings.rounds):
                for label, variant, backend in contenders:
                    for _ in range(per_round):
                        start = time.perf_counter()
                        backend.infer(pixels[id(backend)])
                        times.setdefault((label, variant, batch), []).append(time.perf_counter() - start)
    finally:
        for _, _, backend in contenders:
            backend.deactivate()
    rows = []
    for (label, variant, batch), samples in times.items():
        baseline = np.median(times[(fmca_name, variant, batch)])
        size = next(b.metadata.image_size for name, _, b in contenders if name == label)
        rows.append({"model": label, "input_px": size, "backend": variant, "batch": batch,
                     "median_ms": 1000 * float(np.median(samples)), "ms_per_crop": 1000 * float(np.median(samples)) / batch,
                     "vs_fmca": float(np.median(samples) / baseline), "iterations": len(samples)})
    return {"machine": machine_line(), "compared_with": fmca_name, "rows": rows}


def markdown_table(result: dict) -> str:
    lines = [f"Machine: {result['machine']}", "",
             f"| model | input px | backend | batch | median ms per batch | ms per crop | time vs {result['compared_with']} |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row['input_px']} | {row['backend']} | {row['batch']} | {row['median_ms']:.3g} | "
                     f"{row['ms_per_crop']:.3g} | {row['vs_fmca']:.2f} |")
    return "\n".join(lines)
