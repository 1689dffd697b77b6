"""Check, on any CPU, the reduced-precision ONNX a TensorRT 11 build would parse, before going to the device.

    python -m export.trt_precheck --onnx model.onnx (--fp16 | --int8 --calib DIR) [--save OUT.onnx]

Writes nothing unless `--save`: builds the mixed-precision FP16 graph (`trt_fp16`) or the symmetric Q/DQ INT8
graph (`trt_int8`), runs it and the float32 graph in ONNX Runtime on random images and the shipped face
photos, and prints the same table `export.build_engine` prints after a build. ONNX Runtime's CPU kernels are
not TensorRT's: this checks the graph transformation (which ops lost precision and by how much), not the
engine's kernels.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import onnx

from fmca_rt.errors import FMCAError
from fmca_rt.metadata import ModelMetadata

from .build_engine import onnx_batch
from .trt_validate import onnx_runner, validate


def reduced_precision_graph(onnx_path: Path, precision: str, calib_dir: Path | None, scratch: Path,
                            metadata: ModelMetadata) -> Path:
    if precision == "fp16":
        from .trt_fp16 import convert_to_mixed_fp16

        target = scratch / "model.fp16.onnx"
        onnx.save(convert_to_mixed_fp16(onnx.load(str(onnx_path))), str(target))
        return target
    from .trt_int8 import CalibrationSet, quantize_qdq

    calibration = CalibrationSet.from_folder(calib_dir, metadata)
    return quantize_qdq(onnx_path, calibration, scratch / "model.qdq.onnx", input_name=metadata.input_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.trt_precheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=Path, required=True, help="float32 ONNX from `python -m export.onnx`")
    precision = parser.add_mutually_exclusive_group(required=True)
    precision.add_argument("--fp16", action="store_true")
    precision.add_argument("--int8", action="store_true")
    parser.add_argument("--calib", type=Path, metavar="DIR", help="face crops to calibrate INT8 on")
    parser.add_argument("--max-delta", type=float, default=1e-2, metavar="P", help="tolerance on |dP(fake)| (0.01)")
    parser.add_argument("--save", type=Path, metavar="OUT", help="also write the reduced-precision ONNX here")
    args = parser.parse_args(argv)
    if args.int8 and args.calib is None:
        parser.error("--int8 needs --calib DIR (face crops to calibrate on)")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if not args.onnx.is_file():
            raise FMCAError(f"{args.onnx} does not exist or is not a file.")
        model = onnx.load(str(args.onnx), load_external_data=False)
        metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in model.metadata_props}, str(args.onnx))
        with tempfile.TemporaryDirectory(prefix="fmca-precheck-") as scratch:
            reduced = reduced_precision_graph(args.onnx, "fp16" if args.fp16 else "int8", args.calib, Path(scratch),
                                              metadata)
            fixed_batch = onnx_batch(model, metadata.input_name)
            reference, candidate = (onnx_runner(path, metadata, fixed_batch) for path in (args.onnx, reduced))
            report = validate(candidate, reference, metadata, batch=4, tolerance=args.max_delta)
            if args.save is not None:
                args.save.write_bytes(Path(reduced).read_bytes())
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{'FP16' if args.fp16 else 'INT8 Q/DQ'} graph vs float32, both in ONNX Runtime (CPU):")
    print("\n".join(report.lines()))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
