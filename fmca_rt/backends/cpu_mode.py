"""The CPU mode: `Detector("model.onnx", backend="cpu")`, FMCA-Net's fastest accurate path on a plain CPU.

It runs one of the model's INT8 forms:
- `onnxruntime-int8`: ONNX Runtime on the dynamically quantized model (cpu_int8.py), always available;
- `openvino-int8`, `openvino-int8-bf16`: OpenVINO on its INT8 form (openvino_int8.py: the bulk of the matrix
  products and the frequency convolutions static INT8, calibrated on face crops, the other products dynamic
  INT8) with the remaining float operations (attention products, the first convolutions, normalization) in
  float32 or, on CPUs with bfloat16 arithmetic, in bfloat16 (with `pip install 'fmca-rt[openvino]'`).
With `form="auto"` (the default) the choice is measured once per model and machine (cpu_profile.py: the
fastest form whose max |delta P(fake)| against float32 stays within 0.01 on real face crops, float32 when
none does), stored in the cache folder and stated by `describe()`. A file that is already quantized (metadata
precision other than float32, e.g. `python -m export.onnx --int8`) runs as is on ONNX Runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import BackendError, DependencyError
from ..metadata import ModelMetadata
from .base import Backend
from .cpu_int8 import RECIPE_VERSION, default_cache_dir, file_sha256
from .cpu_profile import FLOAT_FORM, CpuProfile, Timing, measure, read_profile, write_profile
from .onnxruntime_cpu import (OnnxRuntimeCpuFloatBackend, OnnxRuntimeInt8Backend, check_onnx_for_cpu, is_quantized,
                              usable_cores)

FORMS = ("onnxruntime-int8", "openvino-int8", "openvino-int8-bf16")
PROFILE_LIBRARIES = ("onnxruntime", "openvino", "nncf")
log = logging.getLogger("fmca_rt.cpu")


def face_crops() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(crops the forms are checked on, other crops that calibrate OpenVINO's static part):
    fmca_rt.bench.accuracy's, from the face photos that matplotlib and scikit-image ship."""
    from ..bench.accuracy import accuracy_crops, calibration_crops, shipped_crops

    base = shipped_crops()
    return accuracy_crops(base), calibration_crops(base)


def model_pixels(metadata: ModelMetadata, crops: list[np.ndarray]) -> np.ndarray:
    from ..preprocess import preprocess

    return preprocess(crops, metadata.image_size, metadata.mean, metadata.std, metadata.preprocessing)


def calibration_pixels(float_onnx: Path) -> list[np.ndarray]:
    """One 1 x 3 x S x S array per calibration crop (the float model's metadata says how to preprocess)."""
    from .onnxruntime_cpu import read_onnx_metadata

    metadata = read_onnx_metadata(float_onnx)
    return [model_pixels(metadata, [crop]) for crop in face_crops()[1]]


def machine_description(threads: int) -> dict:
    """What a stored profile was measured on; a profile that does not match is measured again."""
    from ..bench.machine import cpu_description, library_versions
    from .openvino_int8 import RECIPE_VERSION as OPENVINO_RECIPE

    model, features = cpu_description()
    return {"cpu": model, "cpu_features": features, "threads": threads,
            "libraries": library_versions(PROFILE_LIBRARIES),
            "recipes": {"onnxruntime-int8": RECIPE_VERSION, "openvino-int8": OPENVINO_RECIPE}}


class CpuBackend(Backend):
    """The CPU mode. `threads` defaults to the cores this process may use; `cache_dir` (default
    ~/.cache/fmca-rt/cpu) holds the INT8 forms and the measured profiles; `form` is "auto" or one of FORMS
    (then nothing is measured)."""

    name = "cpu"

    def __init__(self, model_path, device: str | None = None, threads: int | None = None, cache_dir=None,
                 form: str = "auto"):
        if device not in (None, "cpu"):
            raise BackendError(f"The cpu backend runs on the CPU only, not on device {device!r}.")
        if form not in ("auto", *FORMS):
            raise BackendError(f"The CPU mode's form must be auto or one of {', '.join(FORMS)}, not {form!r}.")
        super().__init__(model_path, device="cpu")
        self.threads, self.form = threads or usable_cores(), form
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.profile: CpuProfile | None = None
        self.reason = ""  # why this form runs, for describe()
        self._inner: Backend | None = None

    @property
    def chosen_path(self) -> Path | None:
        """The file the chosen form runs (the INT8 ONNX or OpenVINO IR; the model itself for float32)."""
        inner = self._inner
        return None if inner is None else getattr(inner, "int8_path", None) or inner.model_path

    def _maker(self, form: str):
        if form == "onnxruntime-int8":
            return lambda: OnnxRuntimeInt8Backend(self.model_path, threads=self.threads, cache_dir=self.cache_dir)
        if form.startswith("openvino-int8"):
            def make() -> Backend:
                from .openvino import OpenVinoBackend
                from .openvino_int8 import cached_openvino_int8

                path = cached_openvino_int8(self.model_path, self.cache_dir,
                                            lambda: calibration_pixels(self.model_path))
                return OpenVinoBackend(path, threads=self.threads, precision="bf16" if form.endswith("bf16") else "f32")
            return make
        return lambda: OnnxRuntimeCpuFloatBackend(self.model_path, threads=self.threads)

    def activate_impl(self) -> ModelMetadata:
        check_onnx_for_cpu(self.model_path)
        if is_quantized(self.model_path):
            self._inner = OnnxRuntimeInt8Backend(self.model_path, threads=self.threads).activate()
            self.reason = "the given file is already quantized: run as is"
        elif self.form != "auto":
            self._inner = self._maker(self.form)().activate()
            self.reason = "form asked for"
        else:
            self._inner = self._choose()
        self.batch_limits = self._inner.batch_limits
        return self._inner.metadata

    def _choose(self) -> Backend:
        machine = machine_description(self.threads)
        profile_path = self.cache_dir / f"{file_sha256(self.model_path)[:32]}.profile.json"
        profile = read_profile(profile_path, machine)
        if profile is not None:
            self.profile, self.reason = profile, profile.describe()
            return self._maker(profile.chosen)().activate()
        try:
            crops, _ = face_crops()
        except DependencyError as error:
            self.reason = (f"not compared with the other forms: no face crops to check their accuracy on ({error})")
            return self._maker("onnxruntime-int8")().activate()
        log.warning("Measuring the CPU mode's forms of %s on this machine (once; stored in %s)",
                    self.model_path.name, self.cache_dir)
        reference = self._maker(FLOAT_FORM)().activate()
        try:
            pixels = model_pixels(reference.metadata, crops)
            profile, active = measure({form: self._maker(form) for form in FORMS}, reference, pixels, machine,
                                      Timing())
        except BaseException:
            reference.deactivate()
            raise
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        write_profile(profile_path, profile)
        self.profile, self.reason = profile, profile.describe()
        chosen = active.pop(profile.chosen, reference)
        for backend in [*active.values(), reference]:
            if backend is not chosen:
                backend.deactivate()
        return chosen

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        return self._inner.infer_impl(pixels)

    def deactivate_impl(self) -> None:
        self._inner.deactivate()
        self._inner = None

    def describe_impl(self) -> str:
        if self._inner is None:
            return f"form {self.form}, {self.threads} threads"
        return f"{self._inner.describe_impl()}; {self.reason}"
