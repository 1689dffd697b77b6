"""Waiting until this process's compute threads have gone idle, before timing another inference engine.

ONNX Runtime, OpenVINO and PyTorch each keep a pool of worker threads that spin for a while after a run
before they sleep. Timed right after another engine's run, an engine shares the cores with those spinning
threads and looks slower than it is. The process's CPU time (all threads) tells when they have stopped.
"""

from __future__ import annotations

import time

IDLE_WINDOW_S = 0.01  # the process counts as idle when it used less than IDLE_SHARE of a core over this window
IDLE_SHARE = 0.1


def wait_until_idle(at_least: float = 0.0, timeout: float = 1.0) -> tuple[float, bool]:
    """Sleep `at_least` seconds, then until the process is idle; gives up after `timeout` more seconds.
    Returns (seconds waited, whether it became idle)."""
    start = time.perf_counter()
    if at_least > 0:
        time.sleep(at_least)
    deadline = time.perf_counter() + timeout
    while True:
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        time.sleep(IDLE_WINDOW_S)
        busy = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
        if busy < IDLE_SHARE:
            return time.perf_counter() - start, True
        if time.perf_counter() >= deadline:
            return time.perf_counter() - start, False
