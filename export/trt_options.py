"""What an engine build is asked to do, checked before any heavy library is touched.

`BatchProfile` is the one optimization profile on the batch axis (`--batch MIN:OPT:MAX`); `BuildOptions` is
everything `python -m export.build_engine` was told, validated into one consistent request; `PrecisionPlan`
says how the requested precision is reached on each TensorRT generation (10: builder flags and a calibrator;
11: a strongly typed network from an FP16 or Q/DQ ONNX).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from fmca_rt.errors import ConfigError

GIB = 1 << 30


def default_timing_cache(tensorrt_version: str, arch: int) -> Path:
    """Where builds keep TensorRT's timing cache unless told otherwise: one file per TensorRT version and GPU
    architecture under ~/.cache/fmca-rt/tensorrt (or $XDG_CACHE_HOME/fmca-rt/tensorrt)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fmca-rt" / "tensorrt" / f"timing-{tensorrt_version}-sm{arch}.cache"


@dataclass(frozen=True)
class BatchProfile:
    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ConfigError(f"The batch profile needs 1 <= MIN <= OPT <= MAX, got {self.min}:{self.opt}:{self.max}.")

    @classmethod
    def parse(cls, text: str) -> "BatchProfile":
        """'1:4:8' -> (1, 4, 8); a single number N means a fixed batch N:N:N."""
        parts = text.split(":")
        if len(parts) not in (1, 3) or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"--batch takes MIN:OPT:MAX or one number (e.g. 1:4:8), not {text!r}.")
        values = [int(p) for p in parts]
        return cls(*(values * 3 if len(values) == 1 else values))

    def shapes(self, image_size: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes for `IOptimizationProfile.set_shape`."""
        return tuple((batch, 3, image_size, image_size) for batch in (self.min, self.opt, self.max))

    def fit_to_onnx(self, onnx_batch: int | str | None) -> "BatchProfile":
        """A profile the ONNX input can take: a static batch N admits only N:N:N."""
        if isinstance(onnx_batch, int) and onnx_batch > 0 and (self.min, self.max) != (onnx_batch, onnx_batch):
            raise ConfigError(f"The ONNX model has a fixed batch of {onnx_batch}, so --batch must be {onnx_batch} "
                              f"(got {self.min}:{self.opt}:{self.max}); re-export it with --batch dynamic to vary it.")
        return self

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass(frozen=True)
class PrecisionPlan:
    """How one precision is reached; `onnx_conversion` is applied to the ONNX before TensorRT parses it."""

    precision: str
    builder_flags: tuple[str, ...]  # BuilderFlag member names (TensorRT 10 only)
    onnx_conversion: str | None  # None, "fp16" (mixed-precision ONNX) or "int8-qdq" (explicit Q/DQ ONNX)
    calibrator: bool  # TensorRT 10's implicit INT8: an IInt8EntropyCalibrator2 over the calibration images
    keep_fp32_layers: bool  # TensorRT 10 FP16: pin normalization/softmax/reductions to float32


def plan_precision(precision: str, strongly_typed_only: bool) -> PrecisionPlan:
    if precision == "fp32":
        return PrecisionPlan("fp32", (), None, False, False)
    if strongly_typed_only:
        conversion = {"fp16": "fp16", "int8": "int8-qdq"}[precision]
        return PrecisionPlan(precision, (), conversion, False, False)
    if precision == "fp16":
        return PrecisionPlan("fp16", ("FP16", "PREFER_PRECISION_CONSTRAINTS"), None, False, True)
    # INT8 layers where calibration allows, FP16 for the rest, normalization and softmax kept in float32.
    return PrecisionPlan("int8", ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), None, True, True)


@dataclass(frozen=True)
class BuildOptions:
    output: Path
    checkpoint: Path | None = None
    onnx: Path | None = None
    precision: str = "fp32"
    calib_dir: Path | None = None
    plugins: bool = False
    batch: BatchProfile = BatchProfile(1, 1, 1)
    workspace_gib: float = 4.0
    timing_cache: Path | None = None  # None: `default_timing_cache`
    no_timing_cache: bool = False
    kernels_dir: Path | None = None
    max_delta_p_fake: float = 1e-2
    validate: bool = True
    calib_limit: int = 512

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.onnx is None):
            raise ConfigError("Give exactly one model source: --checkpoint CKPT or --onnx MODEL.onnx.")
        source = self.checkpoint or self.onnx
        if not source.is_file():
            raise ConfigError(f"{source} does not exist or is not a file.")
        if self.precision == "int8" and self.calib_dir is None:
            raise ConfigError("--int8 needs calibration images: add --calib DIR (a folder of face crops).")
        if self.calib_dir is not None and self.precision != "int8":
            raise ConfigError("--calib is used only with --int8.")
        if self.calib_dir is not None and not self.calib_dir.is_dir():
            raise ConfigError(f"Calibration folder {self.calib_dir} does not exist.")
        if not self.workspace_gib > 0:
            raise ConfigError(f"--workspace must be a positive number of GiB, not {self.workspace_gib}.")
        if not self.output.parent.is_dir():
            raise ConfigError(f"Output folder {self.output.parent} does not exist.")
        if self.calib_limit < 1:
            raise ConfigError(f"--calib-limit must be at least 1, not {self.calib_limit}.")
        if not self.max_delta_p_fake > 0:
            raise ConfigError(f"--max-delta must be a positive probability difference, not {self.max_delta_p_fake}.")
        if self.kernels_dir is not None and not self.plugins:
            raise ConfigError("--kernels is used only with --plugins.")
        if self.timing_cache is not None and self.no_timing_cache:
            raise ConfigError("Give --timing-cache FILE or --no-timing-cache, not both.")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gib * GIB)

    def command(self) -> str:
        """The command line that rebuilds this engine; stored in the sidecar and quoted by load errors."""
        words = ["python", "-m", "export.build_engine"]
        words += ["--checkpoint", str(self.checkpoint)] if self.checkpoint else ["--onnx", str(self.onnx)]
        if self.precision == "fp16":
            words.append("--fp16")
        elif self.precision == "int8":
            words += ["--int8", "--calib", str(self.calib_dir)]
        if self.plugins:
            words.append("--plugins")
            if self.kernels_dir is not None:
                words += ["--kernels", str(self.kernels_dir)]
        words += ["--batch", str(self.batch), "--workspace", f"{self.workspace_gib:g}"]
        if self.timing_cache is not None:
            words += ["--timing-cache", str(self.timing_cache)]
        if self.no_timing_cache:
            words.append("--no-timing-cache")
        words += ["--output", str(self.output)]
        if self.calib_limit != 512:
            words += ["--calib-limit", str(self.calib_limit)]
        if not self.validate:
            words.append("--no-validate")
        elif self.max_delta_p_fake != 1e-2:
            words += ["--max-delta", f"{self.max_delta_p_fake:g}"]
        return shlex.join(words)
