"""The TensorRT build itself: ONNX file in, serialized plan out. The one place that drives `tensorrt.Builder`.

Written against the TensorRT 10 and 11 Python APIs (name-based, explicit batch). The generation decides the
typing: TensorRT 11 (no precision builder flags) builds strongly typed networks from an ONNX whose types were
prepared beforehand (`trt_fp16`, `trt_int8.quantize_qdq`); TensorRT 10 builds weakly typed networks with the
precision flags of the `PrecisionPlan`, pinning normalization, softmax and reduction layers to float32 for
FP16 and INT8, and calibrating INT8 with `trt_int8.entropy_calibrator`.
Enum members are always looked up by name: their integer values moved between 10 and 11.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fmca_rt.backends.tensorrt_env import is_strongly_typed_only, network_flags
from fmca_rt.atomic import write_atomically
from fmca_rt.errors import EngineError

from .trt_options import BatchProfile, PrecisionPlan

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
    """TensorRT 10 FP16/INT8: keep normalization, softmax and reductions in float32; returns how many."""
    pinned_types = {getattr(trt.LayerType, name) for name in FP32_LAYER_TYPES if hasattr(trt.LayerType, name)}
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type in pinned_types:
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
            pinned += 1
    return pinned


def _create_network(trt, builder):
    if is_strongly_typed_only(trt):
        strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        return builder.create_network(network_flags(trt, "STRONGLY_TYPED") if strongly_typed else 0)
    return builder.create_network(0)


def _parse(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors or ["no detail"]
        raise EngineError(f"TensorRT could not parse the ONNX model: {errors[0]}")


def _load_timing_cache(config, path: Path | None):
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)
    if data:
        log.info("Using the timing cache %s.", path)


def build_plan(trt, request: BuildRequest, calibrator=None) -> bytes:
    """Build and serialize the engine; EngineError with TensorRT's first error on failure."""
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network = _create_network(trt, builder)
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
    _load_timing_cache(config, request.timing_cache)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT could not build the engine: {logger.errors[-1] if logger.errors else 'see the log'}")
    if request.timing_cache is not None:
        write_atomically(request.timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)
