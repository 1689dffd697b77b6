"""The INT8 form of a float32 FMCA-Net ONNX file that the CPU mode runs, made once and cached.

What is quantized, and why (benchmarks/RESULTS.md: the `cpu` row of `fmca-rt benchmark` against the rows
that quantize everything, and what else was tried): first the ViT's attention blocks and GELUs are fused
(cpu_fusion.py), then the weights of the matrix products with a constant operand (the ViT's qkv/proj/fc1/fc2,
FTMA, SFCM projections, head) are quantized to INT8 per output channel, their activations to UINT8 at run
time (ONNX Runtime's DynamicQuantizeMatMul and, for the fused qkv projections, QAttention, whose kernels use
the CPU's VNNI dot products). Left in float32: the attention score and value products (both operands are
activations), softmax, normalization, GELU, and the frequency CNN's convolutions, for which ONNX Runtime's integer
convolution (ConvInteger) is several times slower than its float32 one.
Dynamic quantization needs no calibration data, so any exported model can run in the CPU mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..atomic import atomic_path
from ..errors import DependencyError
from ..metadata import ModelMetadata
from .base import BackendError
from .cpu_fusion import fuse_for_cpu

QUANTIZED_OP_TYPES = ["MatMul", "Gemm", "Attention"]
PRECISION = "int8-dynamic"  # written to the cached model's metadata (`extra.precision`)
# Part of the cache key: raise it whenever quantize_for_cpu changes what it writes.
RECIPE_VERSION = 2


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fmca-rt" / "cpu"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _WithoutPreprocessingHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def quantizer_hint_silenced() -> Iterator[None]:
    """ONNX Runtime's quantizer suggests its shape-inference pre-pass on every call (a root-logger warning).
    For FMCA-Net it quantizes the same 70 matrix products with or without the pre-pass, so the hint is dropped."""
    hint = _WithoutPreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(hint)


def quantize_for_cpu(float_onnx: str | Path, output: str | Path) -> Path:
    """Write the INT8 form of `float_onnx` to `output` (atomically: a failure leaves no partial file)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise DependencyError("The cpu backend quantizes the model once and needs onnxruntime and onnx: "
                              "pip install 'fmca-rt[cpu]'.") from None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(output, BackendError) as temporary:
            model = onnx.load(str(float_onnx))
            with quantizer_hint_silenced():
                quantize_dynamic(fuse_for_cpu(model), temporary, op_types_to_quantize=QUANTIZED_OP_TYPES,
                                 per_channel=True, weight_type=QuantType.QInt8)
            quantized = onnx.load(str(temporary))
            _mark_precision(quantized, model)
            onnx.save(quantized, str(temporary))
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BackendError(f"Cannot quantize {float_onnx} for the CPU: {reason}") from None
    return output


def _mark_precision(quantized, original) -> None:
    """Carry the float model's fmca-rt metadata over, saying the weights are now INT8."""
    props = {p.key: p.value for p in original.metadata_props}
    metadata = ModelMetadata.from_onnx_props(props, "the float32 model")
    marked = dataclasses.replace(metadata, extra={**metadata.extra, "precision": PRECISION})
    del quantized.metadata_props[:]
    for key, value in {**props, **marked.to_onnx_props()}.items():
        quantized.metadata_props.add(key=key, value=value)


def remove_superseded(cached: Path, pattern: str) -> None:
    """Delete the files beside `cached` that match `pattern` (the same model's forms from earlier recipes),
    keeping `cached` and its companions (same name, other suffix): a new recipe would otherwise leave the
    old forms, about a hundred megabytes each for the paper's model, in the cache for ever. Best effort: a
    file that cannot be deleted stays."""
    for old in cached.parent.glob(pattern):
        if old.with_suffix("") != cached.with_suffix(""):
            try:
                old.unlink()
            except OSError:
                pass


def cached_int8_model(float_onnx: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The INT8 form of `float_onnx`, quantized on first use and then read from the cache (keyed by the
    float model's SHA-256, so a re-exported model is quantized again)."""
    float_onnx = Path(float_onnx)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache_dir / f"{file_sha256(float_onnx)[:32]}.v{RECIPE_VERSION}.int8.onnx"
    if not cached.is_file():
        try:
            quantize_for_cpu(float_onnx, cached)
        except OSError as error:
            raise BackendError(f"Cannot write the CPU model cache {cached}: {error.strerror}; "
                               "set XDG_CACHE_HOME to a writable folder.") from None
        remove_superseded(cached, f"{cached.name.split('.')[0]}.v*.int8.onnx")
    return cached
