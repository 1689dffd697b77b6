"""The TensorRT build itself: ONNX file in, serialized plan out. The one place that drives `tensorrt.Builder`.

Written against the TensorRT 10 and 11 Python APIs (name-based, explicit batch). The generation decides the
typing: TensorRT 11 builds strongly typed networks only (its STRONGLY_TYPED creation flag is deprecated and
ignored, so none is passed) from an ONNX whose types were prepared beforehand (`trt_fp16`,
`trt_int8.quantize_qdq`); TensorRT 10 builds weakly typed networks with the precision flags of the
`PrecisionPlan` (deprecated since 10.12, gone in 11), pinning floating-point normalization, softmax and reduction
layers to float32 for FP16 and INT8, and calibrating INT8 with `trt_int8.entropy_calibrator`.
Enum members are always looked up by name: their integer values moved between 10 and 11. The build reports its
progress (`trt_progress`) and reuses a timing cache when one is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fmca_rt.atomic import write_atomically
from fmca_rt.errors import EngineError, OutputError

from .trt_options import BatchProfile, PrecisionPlan
from .trt_progress import progress_monitor

# Layers whose accumulation FP16 cannot be trusted with (LayerNorm after attention overflows; softmax sums).
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
log = logging.getLogger("fmca_rt.export")


@dataclass(frozen=True)
class BuildRequest:
    onnx_path: Path  # the ONNX TensorRT parses, its precision already prepared
    input_name: str
    image_size: int
    batch: BatchProfile
    workspace_bytes: int
    precision: PrecisionPlan
    timing_cache: Path | None = None


def make_logger(trt):
    """A TensorRT logger that forwards to Python logging and remembers the errors for the exception message."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, message):
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(message)
                log.error("TensorRT: %s", message)
            elif int(severity) <= int(trt.ILogger.Severity.WARNING):
                log.warning("TensorRT: %s", message)
            else:
                log.debug("TensorRT: %s", message)

    return Logger()


def pin_layers_to_fp32(trt, network) -> int:
    """TensorRT 10 FP16/INT8: keep floating-point normalization, softmax and reductions in float32; returns how
    many. Integer reductions (shape arithmetic) keep their type: float32 there would break the network."""
    pinned_types = {getattr(trt.LayerType, name) for name in FP32_LAYER_TYPES if hasattr(trt.LayerType, name)}
    floating = {trt.float32, trt.float16}
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        first_input = layer.get_input(0) if layer.num_inputs else None
        if layer.type in pinned_types and first_input is not None and first_input.dtype in floating:
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
            pinned += 1
    return pinned


def _parse(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors or ["no detail"]
        raise EngineError(f"TensorRT could not parse the ONNX model: {errors[0]}")


def _attach_timing_cache(config, path: Path) -> None:
    """Reuse the timing cache at `path` when TensorRT accepts it (same TensorRT and GPU), else start an empty one."""
    try:
        data = path.read_bytes() if path.is_file() else b""
    except OSError as error:
        log.warning("Cannot read the timing cache %s (%s); building without it.", path, error.strerror)
        data = b""
    if data:
        if config.set_timing_cache(config.create_timing_cache(data), False):
            log.info("Reusing the timing cache %s.", path)
            return
        log.warning("The timing cache %s was written for another TensorRT version or GPU; building without it "
                    "(it will be replaced).", path)
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        log.warning("TensorRT refused an empty timing cache; building without one.")


def _save_timing_cache(config, path: Path) -> None:
    cache = config.get_timing_cache()
    if cache is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, bytes(cache.serialize()))
    except (OSError, OutputError) as error:  # the engine is what matters; a later build is only slower
        log.warning("Could not save the timing cache to %s: %s", path, getattr(error, "strerror", None) or error)


def build_plan(trt, request: BuildRequest, calibrator=None) -> bytes:
    """Build and serialize the engine; EngineError with TensorRT's first error on failure."""
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # 10: weakly typed, explicit batch; 11: strongly typed, the only kind
    _parse(trt, network, logger, request.onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_bytes)
    profile = builder.create_optimization_profile()
    profile.set_shape(request.input_name, *request.batch.shapes(request.image_size))
    config.add_optimization_profile(profile)
    for flag in request.precision.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if request.precision.keep_fp32_layers:
        log.info("Kept %d normalization/softmax/reduction layers in float32.", pin_layers_to_fp32(trt, network))
    if calibrator is not None:
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    if request.timing_cache is not None:
        _attach_timing_cache(config, request.timing_cache)
    config.progress_monitor = progress_monitor(trt)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT could not build the engine: {logger.errors[-1] if logger.errors else 'see the log'}")
    if request.timing_cache is not None:
        _save_timing_cache(config, request.timing_cache)
    return bytes(plan)
