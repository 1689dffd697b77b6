"""Build a TensorRT engine for FMCA-Net, check it against ONNX Runtime float32, write it with its sidecar.

    python -m export.build_engine (--checkpoint CKPT | --onnx MODEL.onnx) [--fp16 | --int8 --calib DIR]
        [--plugins [--kernels DIR]] [--batch MIN:OPT:MAX] [--workspace GiB] [--timing-cache FILE | --no-timing-cache]
        [--output fmca.engine] [--max-delta 0.01 | --no-validate]

An ONNX written by `python -m export.face_onnx` (a face detector network) builds the same way; it is
checked by the faces it finds (`export.face_validate`) instead of P(fake).

Runs on the machine the engine is for (the Jetson or the desktop GPU): engines are tied to the TensorRT version
and the GPU architecture. `--checkpoint` exports the ONNX first (`export.onnx`, with the plugin nodes when
`--plugins`). `--plugins` serves the Haar DWT and the SFCM attention with the project's Triton kernels, as PTX
compiled ahead of time (`python -m kernels.aot`, or now for this GPU when `--kernels` is not given). The engine
file stays a plain TensorRT plan; `fmca.engine.json` beside it says what it is. Nothing replaces an existing
engine until the new one has been built and validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from fmca_rt.backends.tensorrt_env import (current_gpu, import_tensorrt, import_tensorrt_plugin,
                                           is_strongly_typed_only)
from fmca_rt.atomic import write_atomically
from fmca_rt.metadata import FACE_DETECTOR_KIND
from fmca_rt.backends.tensorrt_sidecar import EngineSidecar, file_sha256, sidecar_path, write_engine
from fmca_rt.errors import ConfigError, DependencyError, EngineError, FMCAError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.output_paths import OutputPaths

from .trt_builder import BuildRequest, build_plan
from .trt_options import BatchProfile, BuildOptions, PrecisionPlan, default_timing_cache, plan_precision
from .trt_plugins import PLUGIN_IDS, callback_error

PLUGIN_DOMAIN = "fmca"
log = logging.getLogger("fmca_rt.export")


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise DependencyError("Building an engine reads the ONNX model with the 'onnx' package: pip install onnx "
                              "onnxruntime (or 'fmca-rt[export]').") from None
    return onnx


def onnx_batch(model, input_name: str) -> int | str | None:
    for value in model.graph.input:
        if value.name == input_name:
            dim = value.type.tensor_type.shape.dim[0]
            return dim.dim_value if dim.HasField("dim_value") else dim.dim_param or None
    raise ConfigError(f"The ONNX model has no input named {input_name!r}.")


def _export_checkpoint(checkpoint: Path, scratch: Path, plugins: bool) -> Path:
    try:
        from .onnx import export_onnx  # needs torch; only the --checkpoint route does
    except ImportError as error:
        raise DependencyError(f"--checkpoint exports the ONNX first, which needs {error.name}: pip install "
                              "'fmca-rt[export]', or export elsewhere and pass --onnx.") from None

    log.info("Exporting %s to ONNX%s ...", checkpoint, " with plugin nodes" if plugins else "")
    return export_onnx(checkpoint, scratch / "model.onnx", plugins=plugins)


def _prepare_onnx(float_onnx: Path, plan: PrecisionPlan, calibration, scratch: Path, batch: BatchProfile,
                  input_name: str) -> Path:
    """The ONNX TensorRT parses: the float32 one, or its FP16 / Q/DQ form for a strongly typed build."""
    if plan.onnx_conversion == "fp16":
        import onnx

        from .trt_fp16 import convert_to_mixed_fp16, precision_summary

        converted = convert_to_mixed_fp16(onnx.load(str(float_onnx)))
        log.info("Mixed-precision ONNX: %s.", precision_summary(converted))
        target = scratch / "model.fp16.onnx"
        onnx.save(converted, str(target))
        return target
    if plan.onnx_conversion == "int8-qdq":
        from .trt_int8 import quantize_qdq

        return quantize_qdq(float_onnx, calibration, scratch / "model.qdq.onnx", batch.opt, input_name)
    return float_onnx


def build_engine(options: BuildOptions):
    """Build, validate and write the engine; returns (engine path, AccuracyReport or None)."""
    trt = import_tensorrt()
    if options.plugins:
        import_tensorrt_plugin()  # TensorRT 10.9+; said before any slow step
    gpu = current_gpu()
    _import_onnx()
    plan = plan_precision(options.precision, is_strongly_typed_only(trt))
    log.info("TensorRT %s on %s: %s build.", trt.__version__, gpu.describe(), options.precision)
    timing_cache = None if options.no_timing_cache else options.timing_cache or default_timing_cache(trt.__version__,
                                                                                                      gpu.arch)
    if timing_cache is not None:
        log.info("Timing cache: %s (reused by later builds; --timing-cache FILE chooses another, --no-timing-cache "
                 "builds without).", timing_cache)
    with tempfile.TemporaryDirectory(prefix=".fmca-engine-", dir=options.output.parent) as scratch_name:
        scratch = Path(scratch_name)
        float_onnx = options.onnx or _export_checkpoint(options.checkpoint, scratch, options.plugins)
        model = _import_onnx().load(str(float_onnx), load_external_data=False)
        metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in model.metadata_props}, str(float_onnx))
        has_plugins = any(node.domain == PLUGIN_DOMAIN for node in model.graph.node)
        if has_plugins != options.plugins:
            raise ConfigError(f"{float_onnx.name} {'has' if has_plugins else 'has no'} fmca plugin nodes; "
                              + ("add --plugins." if has_plugins else "export it with `python -m export.onnx "
                                 "--plugins` or drop --plugins."))
        fixed_batch = onnx_batch(model, metadata.input_name)
        batch = options.batch.fit_to_onnx(fixed_batch)
        if options.plugins:  # kernels compiled and checked against every plugin node before any slow step
            from .trt_plugin_setup import prepare_plugins

            prepare_plugins(options.kernels_dir, gpu.arch, metadata,
                            [node for node in model.graph.node if node.domain == PLUGIN_DOMAIN], scratch)
        calibration = None
        if options.precision == "int8":
            from .trt_int8 import CalibrationSet

            calibration = CalibrationSet.from_folder(options.calib_dir, metadata, options.calib_limit)
            log.info("Calibrating on %d face crops (%d unreadable skipped).", len(calibration.pixels),
                     calibration.skipped)
        parse_onnx = _prepare_onnx(float_onnx, plan, calibration, scratch, batch, metadata.input_name)
        request = BuildRequest(parse_onnx, metadata.input_name, metadata.image_size, batch, options.workspace_bytes,
                               plan, timing_cache)
        try:
            plan_bytes = _build(trt, request, plan, calibration, options, file_sha256(float_onnx))
        except EngineError:
            if options.plugins and callback_error():  # TensorRT reports a failed plugin callback vaguely
                raise EngineError(f"TensorRT could not build the engine: {callback_error()}") from None
            raise
        sidecar = EngineSidecar(
            metadata=metadata, tensorrt_version=trt.__version__, gpu_name=gpu.name,
            compute_capability=gpu.compute_capability, precision=options.precision,
            batch_profile=(batch.min, batch.opt, batch.max), onnx_sha256=file_sha256(float_onnx),
            engine_sha256=hashlib.sha256(plan_bytes).hexdigest(), build_command=options.command(),
            plugins=PLUGIN_IDS if options.plugins else (), strongly_typed=is_strongly_typed_only(trt))
        staged = scratch / options.output.name
        write_engine(staged, plan_bytes, sidecar)

        report = None
        if options.validate and metadata.config.get("kind") == FACE_DETECTOR_KIND:
            _validate_face_engine(staged, float_onnx, metadata, batch, sidecar)
        elif options.validate:
            from fmca_rt.backends.tensorrt import TensorRTBackend

            from .trt_validate import onnx_runner, validate

            with TensorRTBackend(staged) as backend:
                report = validate(backend.infer, onnx_runner(float_onnx, metadata, fixed_batch), metadata,
                                  batch.opt, options.max_delta_p_fake)
            for line in report.lines():
                log.info("%s", line)
            if not report.passed:
                raise EngineError(f"The engine's P(fake) differs from ONNX Runtime float32 by up to "
                                  f"{report.max_delta_p_fake:.2e}, above --max-delta {options.max_delta_p_fake:g}; "
                                  f"{options.output} was not written.")
            measured = {"max_delta_p_fake": report.max_delta_p_fake, "max_delta_logit": report.max_delta_logit}
            sidecar = dataclasses.replace(sidecar, extra={"validation": measured})
            write_atomically(sidecar_path(staged), sidecar.to_json().encode())
        os.replace(staged, options.output)
        os.replace(sidecar_path(staged), sidecar_path(options.output))
    return options.output, report


def _validate_face_engine(staged: Path, float_onnx: Path, metadata: ModelMetadata, batch: BatchProfile,
                          sidecar: EngineSidecar) -> None:
    """A face detector engine must find the faces ONNX Runtime float32 finds (export.face_validate)."""
    from fmca_rt.backends.face_network import FaceTensorRTBackend

    from .face_validate import validate_face_engine

    with FaceTensorRTBackend(staged) as backend:
        report = validate_face_engine(backend.infer, float_onnx, metadata, batch.opt)
    for line in report.lines():
        log.info("%s", line)
    if not report.passed:
        raise EngineError(f"The face engine does not find the faces ONNX Runtime float32 finds ({report.lines()[0]}); "
                          "it was not written.")
    sidecar = dataclasses.replace(sidecar, extra={"validation": report.measured()})
    write_atomically(sidecar_path(staged), sidecar.to_json().encode())


def _build(trt, request: BuildRequest, plan: PrecisionPlan, calibration, options: BuildOptions,
           onnx_sha256: str) -> bytes:
    if not plan.calibrator:
        return build_plan(trt, request)
    from fmca_rt.backends.tensorrt_memory import DeviceMemory

    from .trt_int8 import calibration_cache_path, entropy_calibrator

    memory = DeviceMemory.create("auto")
    try:
        cache = calibration_cache_path(options.output, onnx_sha256, calibration, request.batch.opt)
        with memory.activated():
            return build_plan(trt, request, entropy_calibrator(trt, calibration, request.batch.opt, memory, cache))
    finally:
        memory.close()


def _batch_profile(text: str) -> BatchProfile:
    try:
        return BatchProfile.parse(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.build_engine", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="fmca-rt or published-format checkpoint (.pth)")
    source.add_argument("--onnx", type=Path, help="ONNX written by `python -m export.onnx`")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="FP16 with float32 normalization and softmax")
    precision.add_argument("--int8", action="store_true", help="INT8, calibrated on --calib")
    parser.add_argument("--calib", type=Path, metavar="DIR", help="folder of face crops for INT8 calibration")
    parser.add_argument("--calib-limit", type=int, default=512, metavar="N", help="use at most N images (512)")
    parser.add_argument("--plugins", action="store_true", help="Triton-kernel plugins for the DWT and attention")
    parser.add_argument("--kernels", type=Path, metavar="DIR", help="`python -m kernels.aot` output to use")
    parser.add_argument("--batch", type=_batch_profile, default=BatchProfile(1, 1, 1), metavar="MIN:OPT:MAX",
                        help="optimization profile of the batch axis, or one fixed size (default 1)")
    parser.add_argument("--workspace", type=float, default=4.0, metavar="GiB", help="builder workspace (4)")
    parser.add_argument("--timing-cache", type=Path, metavar="FILE",
                        help="read and updated; speeds up rebuilds (default: one per TensorRT version and GPU under "
                             "~/.cache/fmca-rt/tensorrt)")
    parser.add_argument("--no-timing-cache", action="store_true", help="build without a timing cache")
    parser.add_argument("--output", type=Path, default=Path("fmca.engine"), help="engine file (fmca.engine)")
    parser.add_argument("--max-delta", type=float, default=1e-2, metavar="P",
                        help="fail when |P(fake)| differs from ONNX Runtime float32 by more (0.01)")
    parser.add_argument("--no-validate", action="store_true", help="skip the comparison with ONNX Runtime")
    parser.add_argument("-v", "--verbose", action="store_true", help="TensorRT's warnings and details too")
    return parser


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        output=args.output, checkpoint=args.checkpoint, onnx=args.onnx,
        precision="fp16" if args.fp16 else "int8" if args.int8 else "fp32", calib_dir=args.calib,
        plugins=args.plugins, batch=args.batch, workspace_gib=args.workspace, timing_cache=args.timing_cache,
        no_timing_cache=args.no_timing_cache, kernels_dir=args.kernels, max_delta_p_fake=args.max_delta,
        validate=not args.no_validate,
        calib_limit=args.calib_limit)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        options = options_from_args(args)
    except ConfigError as error:
        parser.error(str(error))
    try:
        outputs = OutputPaths(inputs=[args.checkpoint or args.onnx], error_type=EngineError)
        outputs.file("--output", args.output)
        outputs.file("its sidecar", sidecar_path(args.output))
        outputs.check()  # before TensorRT is imported or anything is built
        output, report = build_engine(options)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {output} and {sidecar_path(output).name}"
          + (f" (max |dP(fake)| {report.max_delta_p_fake:.2e} vs ONNX Runtime float32)." if report else "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
