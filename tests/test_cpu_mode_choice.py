"""How the CPU mode chooses its form (fmca_rt.backends.cpu_profile), on stand-in forms whose speed and error
are set by the test: the fastest form within the accuracy bound wins, none within it means float32, a form
that cannot be made is reported, and a stored profile is reused only on the machine it was measured on."""

import time

import numpy as np
import pytest

from fmca_rt.backends.base import Backend
from fmca_rt.backends.cpu_profile import (ACCURACY_BOUND, FLOAT_FORM, CpuProfile, Timing, measure, read_profile,
                                          write_profile)
from fmca_rt.errors import DependencyError
from fmca_rt.metadata import ModelMetadata

CONFIG = {"image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3, "class_names": ["real", "fake"],
          "preprocessing": "cv2-linear"}
FAST = Timing(warmup=1, rounds=2, block=2)


class StandIn(Backend):
    """Logits = a fixed linear function of the pixels, plus `shift` on the fake logit; each run takes `delay`."""

    def __init__(self, shift: float = 0.0, delay: float = 0.0):
        super().__init__(__file__)
        self.shift, self.delay = shift, delay

    def activate_impl(self) -> ModelMetadata:
        return ModelMetadata(config=CONFIG)

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        score = pixels.reshape(len(pixels), -1).mean(axis=1)
        return np.stack([-score, score + self.shift], axis=1).astype(np.float32)


def pixels(count=6):
    return np.random.default_rng(0).uniform(-2, 2, (count, 3, 8, 8)).astype(np.float32)


def expected_delta(x: np.ndarray, shift: float) -> float:
    """max |delta P(fake)| of StandIn(shift) against StandIn(0), computed directly: P(fake) = sigmoid(2 score)."""
    score = x.reshape(len(x), -1).mean(axis=1).astype(np.float64)
    return float(np.abs(1 / (1 + np.exp(-(2 * score + shift))) - 1 / (1 + np.exp(-2 * score))).max())


def test_the_fastest_form_within_the_bound_is_chosen():
    slow_exact, fast_close, fastest_far = StandIn(0.0, 0.02), StandIn(0.02, 0.005), StandIn(0.2, 0.0)
    makers = {"slow-exact": lambda: slow_exact, "fast-close": lambda: fast_close, "fastest-far": lambda: fastest_far}
    profile, active = measure(makers, StandIn().activate(), pixels(), {"cpu": "test"}, FAST)
    assert profile.chosen == "fast-close"
    assert set(active) == set(makers) and all(backend.is_active for backend in active.values())
    assert profile.forms["fastest-far"].latency_ms < profile.forms["fast-close"].latency_ms \
        < profile.forms["slow-exact"].latency_ms
    assert profile.forms["fastest-far"].max_abs_fake_prob_diff > ACCURACY_BOUND and \
        not profile.forms["fastest-far"].eligible
    assert profile.forms["slow-exact"].max_abs_fake_prob_diff == 0.0
    assert profile.forms["fast-close"].max_abs_fake_prob_diff == pytest.approx(expected_delta(pixels(), 0.02), abs=1e-6)
    assert profile.forms["fastest-far"].max_abs_fake_prob_diff == pytest.approx(expected_delta(pixels(), 0.2), abs=1e-6)
    assert profile.crops == 6 and "fast-close" not in profile.describe().split("the others")[1]


class SigmoidMeansReal(StandIn):
    """An imported classifier's form: one logit that means "real" (P(fake) = sigmoid(2 score + shift) again)."""

    def activate_impl(self) -> ModelMetadata:
        return ModelMetadata(config={**CONFIG, "output": {"form": "sigmoid", "positive": "real"}})

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        logits = super().infer_impl(pixels)
        return logits[:, :1] - logits[:, 1:]  # -(2 score + shift)


def test_an_imported_models_output_form_decides_the_error():
    makers = {"close": lambda: SigmoidMeansReal(0.02), "far": lambda: SigmoidMeansReal(0.2)}
    profile, _ = measure(makers, SigmoidMeansReal().activate(), pixels(), {}, FAST)
    assert profile.forms["close"].max_abs_fake_prob_diff == pytest.approx(expected_delta(pixels(), 0.02), abs=1e-6)
    assert profile.forms["far"].max_abs_fake_prob_diff == pytest.approx(expected_delta(pixels(), 0.2), abs=1e-6)
    assert profile.chosen == "close"


def test_without_an_eligible_form_the_float32_model_runs():
    profile, _ = measure({"far": lambda: StandIn(0.5)}, StandIn().activate(), pixels(), {}, FAST)
    assert profile.chosen == FLOAT_FORM and profile.describe().startswith("float32: no INT8 form within")


def test_a_form_that_cannot_be_made_is_reported_and_the_others_still_compete():
    def missing():
        raise DependencyError("openvino is not installed")

    profile, active = measure({"gone": missing, "ok": lambda: StandIn(0.0)}, StandIn().activate(), pixels(), {}, FAST)
    assert profile.chosen == "ok" and set(active) == {"ok"}
    assert profile.notes == ["gone not measured: openvino is not installed"]


def test_a_stored_profile_is_reused_only_on_the_same_machine(tmp_path):
    machine = {"cpu": "test", "threads": 2, "libraries": {"openvino": "1"}}
    profile, _ = measure({"ok": lambda: StandIn(0.01)}, StandIn().activate(), pixels(), machine, FAST)
    path = tmp_path / "model.profile.json"
    write_profile(path, profile)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # written atomically: nothing else left
    again = read_profile(path, machine)
    assert again == profile and isinstance(again, CpuProfile)
    assert read_profile(path, {**machine, "threads": 4}) is None
    assert read_profile(path, {**machine, "libraries": {"openvino": "2"}}) is None
    path.write_text("{ half a profile")
    assert read_profile(path, machine) is None
