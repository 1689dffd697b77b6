"""FMCA-Net -> ONNX, checked against PyTorch before it replaces anything.

    python -m export.onnx --checkpoint CKPT --output model.onnx [--opset N] [--batch N|dynamic]
                          [--plugins] [--int8 --calib DIR [--holdout DIR]]

The graph has input `pixels` (B x 3 x S x S float32, normalized) and output `logits` (B x classes), a
dynamic batch unless `--batch N`, LayerNormalization nodes, folded constants (the resized position
embedding included) and the model's metadata (fmca_rt.metadata) in `metadata_props`. `--plugins` writes
the TensorRT form, in which the Haar DWT and the SFCM attention cores are single `fmca` plugin nodes.

The exporter is torch.onnx's torch.export-based one (`dynamo=True`): the TorchScript exporter is
deprecated, and its plugin route (autograd.Function.symbolic) goes with it. Its lowest opset is 18, so
that is the default and the minimum (TensorRT 10's parser reads opsets 9 to 20).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import sys
import time
import warnings
from os import PathLike
from pathlib import Path

import onnx
import onnx_graphsurgeon as gs
import torch

from fmca_rt.atomic import atomic_path
from fmca_rt.errors import ExportError, FMCAError
from fmca_rt.interrupts import exit_status, signals_interrupt
from fmca_rt.metadata import ModelMetadata
from fmca_rt.output_paths import OutputPaths
from training import ops
from training.model import FMCANet

from . import plugin_ops
from .verify import ParityReport, verify_onnx

__all__ = ["MIN_OPSET", "export_onnx", "main", "verify_onnx"]

MIN_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"
log = logging.getLogger("fmca_rt.export")


def sha256_of(path: str | PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_outputs(checkpoint: str | PathLike | None, output: str | PathLike, *more: tuple[str, Path]) -> None:
    """ExportError before any work when an output would replace the checkpoint (or another output), or
    cannot be written."""
    outputs = OutputPaths(inputs=() if checkpoint is None else (checkpoint,), error_type=ExportError)
    outputs.file("--output", output)
    for option, path in more:
        outputs.file(option, path)
    outputs.check()


def _load_source(source: str | PathLike | FMCANet) -> tuple[FMCANet, str | None]:
    if isinstance(source, FMCANet):  # a copy: export must not flip the caller's model into eval mode
        return copy.deepcopy(source).float().cpu().eval(), None
    return FMCANet.from_checkpoint(source), sha256_of(source)


def _check_batch(batch: str | int) -> None:
    if batch != "dynamic" and not (isinstance(batch, int) and batch >= 1):
        raise ExportError(f"Batch must be 'dynamic' or a positive integer, not {batch!r}.")


def trace_to_onnx(model: FMCANet, opset: int = MIN_OPSET, batch: str | int = "dynamic",
                  plugins: bool = False) -> onnx.ModelProto:
    """torch.onnx (dynamo) export of an eval-mode model; plugin nodes in place of the DWT and attention."""
    if opset < MIN_OPSET:
        raise ExportError(f"Opset {opset} is too old: the exporter writes opset {MIN_OPSET} or newer.")
    _check_batch(batch)
    size = model.config.image_size
    example = torch.zeros(2 if batch == "dynamic" else batch, 3, size, size)
    dynamic = {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=4096)}} if batch == "dynamic" else None
    implementation = plugin_ops.IMPLEMENTATION_NAME if plugins else "reference"
    try:
        with ops.implementation(implementation), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                dynamo=True, dynamic_shapes=dynamic, verbose=False, optimize=True,
                custom_translation_table=plugin_ops.TRANSLATION_TABLE if plugins else None)
    except Exception as error:  # torch.onnx raises many unrelated types; each becomes one sentence
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"torch.onnx could not export the model: {first_line}") from None
    return program.model_proto


def clean_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constants, drop dead nodes and the exporter's per-node debug metadata (source paths)."""
    severity, gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.severity, gs.logger.G_LOGGER.ERROR
    try:  # its warning about large folded intermediates concerns the position-embedding resize: intended
        graph = gs.import_onnx(model)
        graph.fold_constants().cleanup().toposort()
        cleaned = gs.export_onnx(graph)
    finally:
        gs.logger.G_LOGGER.severity = severity
    for node in cleaned.graph.node:
        del node.metadata_props[:]
    del cleaned.metadata_props[:]
    return cleaned


def attach_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    onnx.helper.set_model_props(model, metadata.to_onnx_props())
    model.producer_name, model.producer_version = "fmca-rt", metadata.package_version


def save_atomically(model: onnx.ModelProto, output: str | PathLike, check=None) -> Path:
    """Write beside `output`, run `check(temp_path)`, then rename: a failure never replaces a good file."""
    output = Path(output)
    with atomic_path(output, ExportError) as temporary:
        try:
            onnx.save(model, str(temporary))
        except OSError as error:
            raise ExportError(f"Cannot write {output}: {error.strerror}.") from None
        if check is not None:
            check(temporary)
    return output


def export_onnx(source: str | PathLike | FMCANet, output: str | PathLike, opset: int = MIN_OPSET,
                batch: str | int = "dynamic", plugins: bool = False, verify: bool = True) -> Path:
    """Export a checkpoint (path) or an FMCANet to `output`; checked with onnx.checker and, unless
    `verify=False`, against PyTorch in ONNX Runtime (ExportError above 1e-4 on the logits)."""
    _check_batch(batch)
    check_outputs(None if isinstance(source, FMCANet) else source, output)  # before the slow part
    model, source_sha256 = _load_source(source)
    started = time.perf_counter()
    graph = clean_graph(trace_to_onnx(model, opset, batch, plugins))
    written_opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    extra = {"opset": written_opset, "batch": batch, "plugins": plugins, "precision": "float32"}
    attach_metadata(graph, ModelMetadata(config=model.config.to_dict(), source_sha256=source_sha256, extra=extra,
                                         calibration=model.calibration))
    log.info("Exported in %.1f s (%d nodes).", time.perf_counter() - started, len(graph.graph.node))

    def check(path: Path) -> None:
        try:
            onnx.checker.check_model(str(path))
        except onnx.checker.ValidationError as error:
            raise ExportError(f"The exported graph is not valid ONNX: {str(error).splitlines()[0]}") from None
        if verify:
            report = verify_onnx(path, model, (1, 3) if batch == "dynamic" else (batch,))
            _log_report(report)
            if not report.passed:
                raise ExportError(f"The ONNX graph does not compute the PyTorch model: max |logit diff| "
                                  f"{report.max_abs_diff:.2e} exceeds {report.tolerance:g}; {output} was not written.")

    path = save_atomically(graph, output, check)
    log.info("Wrote %s (%.1f MB).", path, path.stat().st_size / 1e6)
    return path


def _log_report(report: ParityReport) -> None:
    for line in report.lines():
        log.info("%s", line)


def _batch_argument(text: str) -> str | int:
    if text == "dynamic":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 'dynamic' or a positive integer, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="FMCA-Net checkpoint (.pth), fmca-rt or published format")
    parser.add_argument("--output", required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset, >= {MIN_OPSET} (default %(default)s)")
    parser.add_argument("--batch", type=_batch_argument, default="dynamic", help="'dynamic' (default) or a fixed size")
    parser.add_argument("--plugins", action="store_true", help="TensorRT form: HaarDWT and SFCMAttention plugin nodes")
    parser.add_argument("--int8", action="store_true", help="also write OUTPUT's stem + .int8.onnx (ONNX Runtime QDQ)")
    parser.add_argument("--calib", help="folder of face crops to calibrate INT8 on")
    parser.add_argument("--holdout", help="folder of face crops to measure INT8 on (real/ and fake/ give an AUC); "
                                          "default: every 4th --calib image, kept out of calibration")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.int8 and not args.calib:
        parser.error("--int8 needs --calib DIR (face crops to calibrate on)")
    if args.int8 and args.plugins:
        parser.error("--int8 quantizes the ONNX Runtime graph; it cannot be combined with --plugins")
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)
    path = None
    try:
        with signals_interrupt():  # SIGTERM and SIGHUP unwind like Ctrl-C, so the temporary file is removed
            if args.int8:
                from .quantize import int8_path_for

                check_outputs(args.checkpoint, args.output, ("the INT8 form", int8_path_for(Path(args.output))))
            path = export_onnx(args.checkpoint, args.output, opset=args.opset, batch=args.batch, plugins=args.plugins)
            if args.int8:
                from .quantize import quantize_int8

                quantize_int8(path, args.calib, holdout_dir=args.holdout)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        done = f"{path} was written, its INT8 form was not" if path else "no file was replaced"
        print(f"error: interrupted; {done}.", file=sys.stderr)
        return exit_status(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
