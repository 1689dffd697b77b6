"""The benchmark's fairness and machine-line helpers: waiting for idle engine threads (on a simulated clock,
so the machine's load cannot flake it), and the per-engine matrix-product rate (each engine's product checked
against NumPy, so the rate is that of a real product)."""

import numpy as np
import pytest

import fmca_rt.idle as idle
from fmca_rt.bench import gemm


class SimulatedProcess:
    """perf_counter / process_time / sleep of a process whose other threads burn `busy_cores` until `stop_at`."""

    def __init__(self, busy_cores: float, stop_at: float):
        self.now, self.cpu, self.busy_cores, self.stop_at = 0.0, 0.0, busy_cores, stop_at

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        spinning = max(0.0, min(self.now + seconds, self.stop_at) - self.now)
        self.cpu += spinning * self.busy_cores
        self.now += seconds


def test_waits_while_engine_threads_spin_and_returns_once_they_stop(monkeypatch):
    clock = SimulatedProcess(busy_cores=2.0, stop_at=0.25)
    monkeypatch.setattr(idle, "time", clock)
    waited, became_idle = idle.wait_until_idle()
    assert became_idle and 0.25 <= waited <= 0.25 + 2 * idle.IDLE_WINDOW_S


def test_an_idle_process_waits_one_window_and_at_least_the_pause(monkeypatch):
    clock = SimulatedProcess(busy_cores=2.0, stop_at=0.0)
    monkeypatch.setattr(idle, "time", clock)
    assert idle.wait_until_idle() == (pytest.approx(idle.IDLE_WINDOW_S), True)
    assert idle.wait_until_idle(at_least=0.05)[0] == pytest.approx(0.05 + idle.IDLE_WINDOW_S)


def test_gives_up_after_the_timeout_and_says_so(monkeypatch):
    clock = SimulatedProcess(busy_cores=0.5, stop_at=100.0)
    monkeypatch.setattr(idle, "time", clock)
    waited, became_idle = idle.wait_until_idle(timeout=0.3)
    assert not became_idle and 0.3 <= waited <= 0.3 + 2 * idle.IDLE_WINDOW_S


@pytest.mark.parametrize("engine", sorted(gemm.ENGINES))
def test_each_engine_computes_the_product_it_is_timed_on(engine):
    try:
        run = gemm.ENGINES[engine](2)
    except ImportError:
        pytest.skip(f"{engine} is not installed")
    a, b = gemm._operands()
    product = run()
    assert product.shape == (gemm.M, gemm.N)
    np.testing.assert_allclose(product, a.astype(np.float64) @ b, rtol=1e-3, atol=1e-2)


def test_rates_are_reported_per_installed_engine():
    rates = gemm.gemm_gflops(threads=2, repeats=2)
    assert "onnxruntime" in rates and all(rate > 0 for rate in rates.values())
