"""Which form of a model the CPU mode runs on this machine: measured once, stored beside the cached forms.

The CPU mode has several INT8 forms to offer (cpu_mode.py: ONNX Runtime's, OpenVINO's). Which is fastest
depends on the CPU, its core count and the library versions; whether a form is accurate enough depends on
the model's weights. So both are measured, on first use, for this model on this machine:
- accuracy: max |delta P(fake)| of each form against the float32 model (ONNX Runtime, default session) on
  real face crops (fmca_rt.bench.accuracy: two photos that matplotlib and scikit-image ship, mirrored, and
  fixed photometric variants); a form above ACCURACY_BOUND is not eligible;
- speed: batch-1 latency, the forms timed in alternating blocks, each block started only once the process's
  threads are idle (fmca_rt.idle), the minimum over all blocks.
The fastest eligible form wins; if none is eligible the CPU mode runs the float32 model. The result is stored
as JSON (`<model sha256>.profile.json`) with the machine it was measured on, and measured again when that
machine description (CPU, features, threads, library and recipe versions) no longer matches.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_atomically
from ..errors import BackendError, FMCAError
from ..idle import wait_until_idle
from .base import Backend

ACCURACY_BOUND = 0.01  # max |delta P(fake)| against float32 on the face crops
PROFILE_SCHEMA = "fmca-rt.cpu-profile/1"
FLOAT_FORM = "onnxruntime-fp32"  # the reference, and the fallback when no INT8 form keeps the bound
# The forms are checked in batches of the Detector's default size: ONNX Runtime's dynamic INT8 quantizes the
# activations per call, so its outputs (and its delta) depend a little on which crops share a call.
CHECK_BATCH = 8
log = logging.getLogger("fmca_rt.cpu")


@dataclass(frozen=True)
class Timing:
    warmup: int = 2
    rounds: int = 5
    block: int = 3  # timed batch-1 runs per form and round


@dataclass
class FormMeasurement:
    latency_ms: float  # minimum over the timed runs, batch 1
    max_abs_fake_prob_diff: float
    eligible: bool


@dataclass
class CpuProfile:
    chosen: str
    forms: dict[str, FormMeasurement]
    crops: int
    machine: dict
    measured_at: str
    bound: float = ACCURACY_BOUND
    schema: str = PROFILE_SCHEMA
    notes: list[str] = field(default_factory=list)  # forms that could not be made, and why

    def describe(self) -> str:
        def figures(name: str, m: FormMeasurement) -> str:
            return f"{name} {m.latency_ms:.1f} ms, delta {m.max_abs_fake_prob_diff:.4f}"

        chosen = self.forms.get(self.chosen)
        others = "; ".join(figures(name, m) for name, m in self.forms.items() if name != self.chosen)
        notes = "".join(f"; {note}" for note in self.notes)
        if chosen is None:
            return f"float32: no INT8 form within max |delta P(fake)| {self.bound} ({others}){notes}"
        return (f"chosen on this machine: {chosen.latency_ms:.1f} ms per face at batch 1, max |delta P(fake)| "
                f"{chosen.max_abs_fake_prob_diff:.4f} against float32 on {self.crops} face crops (bound {self.bound})"
                + (f"; the others: {others}" if others else "") + notes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CpuProfile":
        values = json.loads(text)
        values["forms"] = {name: FormMeasurement(**m) for name, m in values["forms"].items()}
        return cls(**values)


def read_profile(path: Path, machine: dict) -> CpuProfile | None:
    """The stored profile when it exists, is readable and was measured on this machine; None otherwise."""
    try:
        profile = CpuProfile.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return profile if profile.schema == PROFILE_SCHEMA and profile.machine == machine else None


def write_profile(path: Path, profile: CpuProfile) -> None:
    write_atomically(path, profile.to_json() + "\n", BackendError)


def batched_logits(backend: Backend, pixels: np.ndarray, batch: int = CHECK_BATCH) -> np.ndarray:
    return np.concatenate([backend.infer(pixels[i:i + batch]) for i in range(0, len(pixels), batch)])


def max_fake_prob_delta(reference_logits: np.ndarray, logits: np.ndarray, fake_index: int) -> float:
    from ..bench.accuracy import compare_outputs

    return compare_outputs(reference_logits, logits, fake_index)["max_abs_fake_prob_diff"]


def time_forms(backends: dict[str, Backend], pixels: np.ndarray, timing: Timing) -> dict[str, float]:
    """Minimum batch-1 latency (ms) of each active backend, in alternating blocks started on idle threads."""
    single = pixels[:1]
    for backend in backends.values():
        for _ in range(timing.warmup):
            backend.infer(single)
    samples: dict[str, list[float]] = {name: [] for name in backends}
    names = list(backends)
    for round_index in range(timing.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wait_until_idle()
            for _ in range(timing.block):
                start = time.perf_counter()
                backends[name].infer(single)
                samples[name].append(time.perf_counter() - start)
    return {name: round(min(values) * 1000.0, 2) for name, values in samples.items()}


def measure(makers: dict[str, Callable[[], Backend]], reference: Backend, pixels: np.ndarray, machine: dict,
            timing: Timing = Timing()) -> tuple[CpuProfile, dict[str, Backend]]:
    """Make, check and time each form; the profile and the active backends (the caller keeps the chosen one
    and deactivates the rest). `makers` give the INT8 forms, `reference` the float32 model (active)."""
    form = reference.metadata.output_form  # softmax over the classes, or one sigmoid logit (imported models)
    reference_logits = form.softmax_logits(batched_logits(reference, pixels))
    active, notes, deltas = {}, [], {}
    try:
        for name, make in makers.items():
            try:
                active[name] = make().activate()
            except FMCAError as error:  # a missing library (DependencyError), a failed quantization, ...
                notes.append(f"{name} not measured: {error}")
                continue
            deltas[name] = max_fake_prob_delta(reference_logits, form.softmax_logits(batched_logits(active[name], pixels)),
                                               form.fake_index)
        latencies = time_forms(active, pixels, timing) if active else {}
    except BaseException:
        for backend in active.values():
            backend.deactivate()
        raise
    forms = {name: FormMeasurement(latencies[name], round(deltas[name], 6), deltas[name] <= ACCURACY_BOUND)
             for name in active}
    eligible = [name for name in forms if forms[name].eligible]
    chosen = min(eligible, key=lambda name: forms[name].latency_ms) if eligible else FLOAT_FORM
    profile = CpuProfile(chosen=chosen, forms=forms, crops=len(pixels), machine=machine,
                         measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), notes=notes)
    return profile, active
