"""Per-stage latency statistics (decode, detect, preprocess, infer, ...) and the table printed at the end."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np


class LatencyStats:
    """Collects durations per named stage; `items` says how many images/faces/frames a sample covered.
    Safe to record from several threads."""

    def __init__(self):
        self._seconds: dict[str, list[float]] = defaultdict(list)
        self._items: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def record(self, stage: str, seconds: float, items: int = 1) -> None:
        with self._lock:
            self._seconds[stage].append(seconds)
            self._items[stage] += items

    @contextmanager
    def measure(self, stage: str, items: int = 1):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - start, items)

    def summary(self) -> dict[str, dict[str, float]]:
        """stage -> calls, items, total/mean/p50/p90/p99/max in milliseconds."""
        with self._lock:
            samples_by_stage = {stage: list(samples) for stage, samples in self._seconds.items()}
            items = dict(self._items)
        table = {}
        for stage, samples in samples_by_stage.items():
            ms = np.asarray(samples) * 1000.0
            table[stage] = {"calls": len(ms), "items": items[stage], "total_ms": round(float(ms.sum()), 3),
                            "mean_ms": round(float(ms.mean()), 3),
                            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)},
                            "max_ms": round(float(ms.max()), 3)}
        return table

    def table(self, title: str = "latency per call") -> str:
        rows = self.summary()
        if not rows:
            return f"{title}: nothing measured"
        header = f"{'stage':<12} {'calls':>6} {'items':>6} {'mean ms':>9} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}"
        lines = [title, header, "-" * len(header)]
        for stage, row in rows.items():
            lines.append(f"{stage:<12} {row['calls']:>6} {row['items']:>6} {row['mean_ms']:>9.2f} {row['p50_ms']:>9.2f} "
                         f"{row['p90_ms']:>9.2f} {row['p99_ms']:>9.2f} {row['max_ms']:>9.2f}")
        return "\n".join(lines)
