"""The benchmark's statistics and machine description, against NumPy and the operating system."""

import os
import time

import numpy as np
import pytest

from fmca_rt.bench.machine import machine_info
from fmca_rt.bench.stats import PeakMemorySampler, Stopwatch, current_rss_mb, percentiles_ms


def test_percentiles_match_numpy_in_milliseconds():
    seconds = list(np.random.default_rng(0).uniform(0.001, 0.1, 101))
    stats = percentiles_ms(seconds)
    assert stats["n"] == 101
    for q in (50, 90, 99):
        assert stats[f"p{q}"] == pytest.approx(np.percentile(seconds, q) * 1000, abs=1e-3)
    assert stats["min"] == pytest.approx(min(seconds) * 1000, abs=1e-3)
    assert percentiles_ms([]) == {"n": 0, "min": None, "p50": None, "p90": None, "p99": None}


def test_stopwatch_times_each_stage_and_returns_the_result():
    watch = Stopwatch()
    assert watch.time("sleep", lambda s: time.sleep(s) or "done", 0.01) == "done"
    assert len(watch.samples["sleep"]) == 1 and watch.samples["sleep"][0] >= 0.01


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="resident memory is read from /proc on Linux")
def test_peak_memory_sampler_attributes_a_large_allocation_to_its_label():
    with PeakMemorySampler(interval=0.001) as sampler:
        sampler.track("small")
        time.sleep(0.02)
        sampler.track("large")
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        time.sleep(0.02)
        sampler.track(None)
        del block
    assert sampler.peak_mb("large") >= sampler.peak_mb("small") + 48
    assert sampler.peak_mb("never") is None
    assert current_rss_mb() > 0


def test_machine_info_names_the_cpu_and_the_libraries():
    info = machine_info()
    assert info["cores"] >= 1 and isinstance(info["cpu"], str) and info["cpu"]
    assert "numpy" in info["libraries"] and "python" in info["libraries"]
    assert set(info["cpu_features"]) <= {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                         "amx_bf16", "amx_int8", "asimd"}


def test_interleaved_rounds_run_exactly_iters_per_variant_in_rotating_order():
    from types import SimpleNamespace

    from fmca_rt.bench.runner import Settings, _interleaved

    contenders = [SimpleNamespace(name=n, backend=SimpleNamespace(device="cpu", name="onnxruntime"), idle_wait_max=0.0,
                                  busy_starts=0) for n in "abc"]
    calls = []
    _interleaved(contenders, Settings(iters=5, rounds=2, pause=0.0), lambda c: calls.append(c.name))
    assert calls == list("aaabbbccc" + "bbccaa")  # 3 + 2 iterations, the second round starting at b
    assert all(c.busy_starts == 0 and 0.0 <= c.idle_wait_max < 1.0 for c in contenders)  # idle: nothing else ran
