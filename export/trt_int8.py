"""INT8 for TensorRT: calibration images in, either a TensorRT 10 calibrator or a TensorRT 11 Q/DQ ONNX out.

Both generations calibrate on the same data: the face crops under `--calib DIR`, preprocessed exactly as at
run time (`fmca_rt.preprocess`), cut into batches of the optimization profile's OPT size (TensorRT calibrates
at the profile's OPT shape).
- TensorRT 10 (implicit quantization): `entropy_calibrator` is an `IInt8EntropyCalibrator2` that uploads those
  batches to the GPU and keeps TensorRT's calibration cache beside the engine, named by the ONNX's hash and the
  calibration images (`calibration_cache_path`), so a rebuild of the same model skips calibration.
- TensorRT 11 removed calibrators: `quantize_qdq` writes explicit QuantizeLinear/DequantizeLinear nodes with
  ONNX Runtime's static quantizer, in the form TensorRT reads: signed INT8, symmetric (zero point 0),
  per-channel weights, only Conv/MatMul/Gemm quantized (normalization and softmax stay in float).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from fmca_rt.atomic import write_atomically
from fmca_rt.errors import ConfigError, DependencyError
from fmca_rt.metadata import ModelMetadata

from .face_samples import image_files, load_face_batch

QUANTIZED_OP_TYPES = ["Conv", "MatMul", "Gemm"]
log = logging.getLogger("fmca_rt.export")


@dataclass(frozen=True)
class CalibrationSet:
    pixels: np.ndarray  # N x 3 x S x S float32, normalized like the model's input
    files: tuple[Path, ...]
    skipped: int  # files that could not be decoded

    @classmethod
    def from_folder(cls, folder: str | Path, metadata: ModelMetadata, limit: int = 512) -> "CalibrationSet":
        pixels, kept, skipped = load_face_batch(image_files(folder)[:limit], metadata)
        return cls(pixels, tuple(kept), skipped)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Full batches only: TensorRT calibrates at one fixed shape."""
        if len(self.pixels) < batch_size:
            raise ConfigError(f"Calibration needs at least {batch_size} images (the profile's OPT batch); "
                              f"{len(self.pixels)} were readable.")
        for start in range(0, len(self.pixels) - batch_size + 1, batch_size):
            yield self.pixels[start:start + batch_size]


def calibration_cache_path(engine: Path, onnx_sha256: str, calibration: CalibrationSet, batch_size: int) -> Path:
    """TensorRT's calibration cache beside the engine, named by what it depends on (the ONNX, the images and the
    batch), so a rebuild from another model or other images never reuses scales computed for the old ones."""
    key = hashlib.sha256(f"{onnx_sha256}:{batch_size}:".encode())
    key.update(np.ascontiguousarray(calibration.pixels).tobytes())
    return engine.with_name(f"{engine.name}.{key.hexdigest()[:16]}.calib")


def entropy_calibrator(trt, calibration: CalibrationSet, batch_size: int, memory, cache_path: Path | None):
    """An IInt8EntropyCalibrator2 feeding `calibration` through `memory` (fmca_rt.backends.tensorrt_memory)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = calibration.batches(batch_size)
            self._host, self._pointer = memory.allocate("calibration", calibration.pixels[:batch_size].shape,
                                                        np.float32)
            self.batches_served = 0

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._host[...] = batch
            memory.upload("calibration", batch.nbytes)
            memory.synchronize()
            self.batches_served += 1
            return [self._pointer] * len(names)

        def read_calibration_cache(self):
            if cache_path is not None and cache_path.is_file():
                log.info("Reusing the calibration cache %s (delete it to calibrate again).", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is not None:
                write_atomically(cache_path, bytes(cache))

    return EntropyCalibrator()


def quantize_qdq(float_onnx: str | Path, calibration: CalibrationSet, output: str | Path, batch_size: int = 8,
                 input_name: str = "pixels") -> Path:
    """Write a Q/DQ INT8 copy of a float32 ONNX for TensorRT 11's strongly typed build."""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
    except ImportError:
        raise DependencyError("INT8 for TensorRT 11 needs onnxruntime to place Q/DQ nodes: "
                              "pip install 'fmca-rt[export]'.") from None
    if any(node.domain == "fmca" for node in onnx.load(str(float_onnx), load_external_data=False).graph.node):
        raise ConfigError("INT8 on TensorRT 11 quantizes the plain graph: build with --int8 without --plugins "
                          "(ONNX Runtime cannot calibrate through the TensorRT plugin nodes).")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = calibration.batches(min(batch_size, len(calibration.pixels)))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="fmca-qdq-") as scratch:
        scratch_output = Path(scratch) / "qdq.onnx"
        quantize_static(str(float_onnx), str(scratch_output), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OP_TYPES, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Entropy,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        quantized = onnx.load(str(scratch_output))
    original = onnx.load(str(float_onnx), load_external_data=False)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    write_atomically(output, quantized.SerializeToString())
    return output
