"""Latency percentiles and a host-memory sampler for the benchmark."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

PERCENTILES = (50, 90, 99)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """min, p50/p90/p99 (and the sample count) of durations given in seconds, in milliseconds. On a shared
    machine the minimum is the best estimate of the uncontended latency; the percentiles show the spread."""
    if not seconds:
        return {"n": 0, "min": None, **{f"p{q}": None for q in PERCENTILES}}
    ms = np.asarray(seconds) * 1000.0
    return {"n": len(ms), "min": round(float(ms.min()), 3),
            **{f"p{q}": round(float(np.percentile(ms, q)), 3) for q in PERCENTILES}}


def _rss_bytes_linux() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def current_rss_mb() -> float | None:
    rss = _rss_bytes_linux()
    return None if rss is None else rss / 2**20


class PeakMemorySampler:
    """Samples the process's resident memory every `interval` seconds in a thread, attributing each sample
    to the label set with `track(label)`; `peak_mb(label)` is the highest seen under that label.

    On systems without /proc (macOS, Windows) every peak is None: the table says n/a rather than guessing.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self._label: str | None = None
        self._peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fmca-rt-memory-sampler", daemon=True)
        self.available = _rss_bytes_linux() is not None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        label, rss = self._label, current_rss_mb()
        if label is not None and rss is not None:
            self._peaks[label] = max(self._peaks.get(label, 0.0), rss)

    def track(self, label: str | None) -> None:
        self._sample()  # the state just before the switch belongs to the previous label
        self._label = label
        self._sample()

    def peak_mb(self, label: str) -> float | None:
        peak = self._peaks.get(label)
        return None if peak is None else round(peak, 1)

    def __enter__(self) -> "PeakMemorySampler":
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class Stopwatch:
    """Durations per stage name: `watch.time("infer", backend.infer, pixels)` runs and times one call."""

    def __init__(self):
        self.samples: dict[str, list[float]] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.samples.setdefault(stage, []).append(seconds)

    def time(self, stage: str, function, *args):
        start = time.perf_counter()
        result = function(*args)
        self.add(stage, time.perf_counter() - start)
        return result
