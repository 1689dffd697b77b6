"""Runs the variants side by side and returns the benchmark's result (a JSON-ready dict, see SCHEMA).

Side by side means interleaved: each round runs a block of iterations of every variant in turn (the order
rotating between rounds), so a burst of load from something else on the machine hits all of them alike.
Before each block the runner waits until the process is idle (fmca_rt.idle), so the previous engine's
worker threads, which spin for up to a few hundred milliseconds after a run, do not share the cores. Each
iteration is timed in three stages: preprocessing (face crops -> pixels), inference (the backend) and
postprocessing (softmax, labels). At batch 1, each iteration is followed by a 720p video frame with one
face timed end to end through the Detector (face detection, crop, preprocessing, inference, labels).
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..backends import Backend
from ..backends.onnxruntime_cpu import usable_cores
from ..detector import Detector
from ..errors import FMCAError
from ..idle import wait_until_idle
from ..preprocess import preprocess
from .accuracy import compare_outputs
from .artifacts import Artifacts
from .gemm import gemm_gflops
from .machine import load_average, machine_info
from .stats import PeakMemorySampler, Stopwatch, current_rss_mb, percentiles_ms
from .variants import BASELINE, Variant, make_backend

SCHEMA = "fmca-rt.benchmark/1"
STAGES = ("preprocess", "infer", "postprocess", "total")


@dataclass(frozen=True)
class Settings:
    batches: tuple[int, ...] = (1, 8)
    iters: int = 20  # timed iterations per variant and batch size
    warmup: int = 3
    rounds: int = 5  # the iterations are split into this many interleaved blocks
    pause: float = 0.05
    device: str | None = None
    frame: bool = True  # also time a video frame with one face end to end (batch 1)


class Contender:
    """One variant, its active backend, and what was measured about it."""

    def __init__(self, variant: Variant, backend: Backend):
        self.variant, self.backend = variant, backend
        self.name = variant.name
        self.load_mb: float | None = None
        self.watches: dict[int, Stopwatch] = {}
        self.frame_watch = Stopwatch()
        self.gpu_peak_mb: float | None = None
        self.form = backend.metadata.output_form
        self.idle_wait_max = 0.0  # the longest wait for idle threads before one of its timed blocks
        self.busy_starts = 0  # timed blocks started with threads still busy after the wait's timeout

    def pixels(self, crops: list[np.ndarray]) -> np.ndarray:
        meta = self.backend.metadata
        return preprocess(crops, meta.image_size, meta.mean, meta.std, meta.preprocessing)

    def postprocess(self, logits: np.ndarray) -> np.ndarray:
        probs = self.form.fake_probability(logits)
        return np.where(probs >= 0.5, "fake", "real")

    def iteration(self, crops: list[np.ndarray], watch: Stopwatch) -> None:
        start = time.perf_counter()
        pixels = watch.time("preprocess", self.pixels, crops)
        logits = watch.time("infer", self.backend.infer, pixels)
        watch.time("postprocess", self.postprocess, logits)
        watch.add("total", time.perf_counter() - start)


def _activate(variants: list[Variant], artifacts: Artifacts, settings: Settings, warm_crops) -> tuple[list, list]:
    contenders, skipped = [], []
    for variant in variants:
        before = current_rss_mb()
        try:
            path = artifacts.path(variant.artifact)
            backend = make_backend(variant, path, settings.device, artifacts.work_dir / "cpu-cache").activate()
            contender = Contender(variant, backend)
            backend.infer(contender.pixels(warm_crops[:1]))
        except FMCAError as error:
            if variant.name == BASELINE:
                raise
            skipped.append({"variant": variant.name, "reason": str(error)})
            continue
        after = current_rss_mb()
        contender.load_mb = None if before is None else round(after - before, 1)
        contenders.append(contender)
    return contenders, skipped


def _interleaved(contenders: list[Contender], settings: Settings, run_block) -> None:
    for round_index in range(settings.rounds):
        block = settings.iters // settings.rounds + (round_index < settings.iters % settings.rounds)
        shift = round_index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            waited, idle = wait_until_idle(settings.pause)
            contender.idle_wait_max = max(contender.idle_wait_max, waited)
            contender.busy_starts += not idle
            for _ in range(block):
                run_block(contender)


def _measure_memory(contenders: list[Contender], batch_crops: list[list[np.ndarray]], sampler) -> None:
    """One more untimed iteration per batch size and variant with the memory sampler on. Kept out of the
    timed rounds: a sampling thread waking every few milliseconds slows a 2-core inference by ~15%."""
    for contender in contenders:
        sampler.track(contender.name)
        _reset_gpu_peak(contender)
        for crops in batch_crops:
            contender.iteration(crops, Stopwatch())
        _read_gpu_peak(contender)
        sampler.track(None)


def _torch_cuda(contender: Contender):
    torch = sys.modules.get("torch")
    on_cuda = str(contender.backend.device).startswith("cuda") and contender.backend.name.startswith("torch")
    return torch if on_cuda and torch is not None and torch.cuda.is_available() else None


def _reset_gpu_peak(contender: Contender) -> None:
    torch = _torch_cuda(contender)
    if torch is not None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _read_gpu_peak(contender: Contender) -> None:
    torch = _torch_cuda(contender)
    if torch is not None:
        peak = torch.cuda.max_memory_allocated() / 2**20
        contender.gpu_peak_mb = round(max(contender.gpu_peak_mb or 0.0, peak), 1)


def _accuracy(contenders: list[Contender], crops: list[np.ndarray]) -> list[dict]:
    if not crops:
        return []
    logits = {c.name: np.concatenate([c.backend.infer(c.pixels(crops[i:i + 8])) for i in range(0, len(crops), 8)])
              for c in contenders}
    reference = logits[BASELINE]
    return [{"variant": c.name, **compare_outputs(c.form.softmax_logits(reference), c.form.softmax_logits(logits[c.name]),
                                                  c.form.fake_index)} for c in contenders]


def _rows(contenders: list[Contender], settings: Settings, sampler: PeakMemorySampler) -> list[dict]:
    baseline = {batch: np.median(contenders[0].watches[batch].samples["infer"]) for batch in settings.batches}
    baseline_min = {batch: np.min(contenders[0].watches[batch].samples["infer"]) for batch in settings.batches}
    baseline_frame = np.median(contenders[0].frame_watch.samples["frame"]) if settings.frame else None
    rows = []
    for contender, batch in itertools.product(contenders, settings.batches):
        samples = contender.watches[batch].samples
        infer_p50 = float(np.median(samples["infer"]))
        frame = contender.frame_watch.samples.get("frame") if batch == 1 else None
        rows.append({
            "variant": contender.name, "backend": contender.backend.describe(), "batch": batch,
            "latency_ms": {stage: percentiles_ms(samples[stage]) for stage in STAGES},
            "throughput_faces_per_s": round(batch / float(np.median(samples["total"])), 2),
            "speedup_vs_baseline": round(float(baseline[batch]) / infer_p50, 3),
            "speedup_vs_baseline_min": round(float(baseline_min[batch]) / float(np.min(samples["infer"])), 3),
            "frame_ms": percentiles_ms(frame) if frame else None,
            "frame_speedup_vs_baseline": round(float(baseline_frame) / float(np.median(frame)), 3) if frame else None,
            "host_memory_mb": {"load": contender.load_mb, "peak_rss": sampler.peak_mb(contender.name)},
            "gpu_memory_mb": contender.gpu_peak_mb,
            "idle_wait_s": {"max": round(contender.idle_wait_max, 3), "busy_starts": contender.busy_starts},
        })
    return rows


def run_benchmark(variants: list[Variant], artifacts: Artifacts, timing_crops: list[np.ndarray],
                  accuracy_crops: list[np.ndarray], frame_bgr: np.ndarray | None, settings: Settings,
                  model_info: dict) -> dict:
    """Activate every variant, check its accuracy against the baseline, time it; the result dict."""
    load_before = load_average()
    machine = {**machine_info(), "gemm_gflops_fp32": gemm_gflops(usable_cores())}
    contenders, skipped = _activate(variants, artifacts, settings, timing_crops)
    accuracy = _accuracy(contenders, accuracy_crops)
    frame_on = settings.frame and frame_bgr is not None and 1 in settings.batches
    detectors = {c.name: Detector(c.backend, faces="auto", batch_size=1) for c in contenders} if frame_on else {}
    for batch in settings.batches:
        crops = [timing_crops[i % len(timing_crops)] for i in range(batch)]
        with_frame = frame_on and batch == 1

        def run(contender: Contender) -> None:  # used at once by _interleaved: the loop variables hold
            contender.iteration(crops, contender.watches[batch])
            if with_frame:  # alternating with the inference iterations, so both see the same load
                contender.frame_watch.time("frame", detectors[contender.name].predict, frame_bgr)

        for contender in contenders:
            contender.watches[batch] = Stopwatch()
            for _ in range(settings.warmup):
                contender.iteration(crops, Stopwatch())
                if with_frame:
                    detectors[contender.name].predict(frame_bgr)
        _interleaved(contenders, settings, run)
    with PeakMemorySampler() as sampler:
        _measure_memory(contenders, [[timing_crops[i % len(timing_crops)] for i in range(batch)]
                                     for batch in settings.batches], sampler)
    settings = Settings(**{**asdict(settings), "frame": frame_on})
    model_info = {**model_info, "config": contenders[0].backend.metadata.config}
    result = {"schema": SCHEMA, "baseline": BASELINE, "machine": machine, "model": model_info,
              "settings": asdict(settings), "load_average": {"before": load_before, "after": load_average()},
              "variants": {c.name: c.variant.summary for c in contenders}, "skipped": skipped,
              "results": _rows(contenders, settings, sampler), "accuracy": accuracy}
    for contender in contenders:
        contender.backend.deactivate()
    return result
