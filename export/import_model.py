"""Bring your own face classifier: an ONNX file or PyTorch weights -> an ONNX file with fmca-rt metadata.

    python -m export.onnx --import model.onnx --classes fake,real --crop-scale 1.25 --output mine.onnx
    python -m export.onnx --import weights.pth --arch timm:efficientnet_b4 --image-size 380 \\
        --output-form sigmoid --output mine.onnx

Like an FMCA-Net export, the file is checked against its source before it is written: PyTorch weights
against the network in PyTorch (random pixels and the packaged real face crops, prepared as the metadata
says), an ONNX classifier against the original file in ONNX Runtime; both against the metadata (input size,
the number of outputs the output form needs). See export/import_spec.py for what the metadata holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx

from fmca_rt.errors import ExportError
from fmca_rt.output_form import OUTPUT_FORMS
from fmca_rt.preprocess import RESIZE_METHODS

from .import_spec import ImportSpec, build_architecture, load_weights
from .onnx import MIN_OPSET, attach_metadata, check_outputs, clean_graph, log, save_atomically, sha256_of, \
    trace_to_onnx
from .ort_session import cpu_session
from .verify import FLOAT32_TOLERANCE, parity_pixels

PYTORCH_SUFFIXES = (".pth", ".pt", ".bin")


def import_classifier(source: str | Path, output: str | Path, spec: ImportSpec, opset: int = MIN_OPSET,
                      batch: str | int = "dynamic") -> Path:
    """Write `output`: the classifier in `source` (.onnx, or PyTorch weights with spec.architecture) with
    metadata from `spec`, verified against its source first (ExportError otherwise)."""
    source = Path(source)
    check_outputs(source, output)
    if not source.is_file():
        raise ExportError(f"{source} does not exist.")
    if source.suffix.lower() == ".onnx":
        return _import_onnx(source, Path(output), spec)
    if source.suffix.lower() in PYTORCH_SUFFIXES:
        return _import_pytorch(source, Path(output), spec, opset, batch)
    raise ExportError(f"--import takes an ONNX file (.onnx) or PyTorch weights ({', '.join(PYTORCH_SUFFIXES)}), "
                      f"not {source.name}.")


def _import_pytorch(source: Path, output: Path, spec: ImportSpec, opset: int, batch: str | int) -> Path:
    import torch

    if spec.architecture is None:
        raise ExportError("PyTorch weights need their architecture: --arch timm:NAME or torchvision:NAME.")
    if spec.image_size is None:
        raise ExportError("PyTorch weights need the input size the network was trained at: --image-size N.")
    metadata = spec.metadata(spec.image_size, source.name, "pixels", "logits", sha256_of(source),
                             {"opset": opset, "batch": batch, "plugins": False, "precision": "float32"})
    network = build_architecture(spec.architecture, spec.form.width)
    load_weights(network, source, spec.architecture)
    network = network.float().eval()
    graph = clean_graph(trace_to_onnx(network, opset, batch, image_size=spec.image_size))
    attach_metadata(graph, metadata)

    def reference(pixels: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return network(torch.from_numpy(pixels)).numpy()

    return _write_verified(graph, output, metadata, reference, "PyTorch", (1, 2) if batch == "dynamic" else (batch,))


def _import_onnx(source: Path, output: Path, spec: ImportSpec) -> Path:
    try:
        model = onnx.load(str(source))
    except Exception:  # protobuf's DecodeError and friends
        raise ExportError(f"{source} is not a readable ONNX model.") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise ExportError(f"{source} has {len(inputs)} inputs and {len(model.graph.output)} outputs; an imported "
                          "classifier takes one image batch and returns one batch of logits.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (3, None):
        raise ExportError(f"{source}'s input {inputs[0].name!r} has shape {dims}; an imported classifier takes "
                          "B x 3 x S x S RGB pixels.")
    graph_size = dims[2] if dims[2] == dims[3] else None
    size = spec.image_size or graph_size
    if size is None:
        raise ExportError(f"{source}'s input {inputs[0].name!r} has no fixed square size ({dims}); give it with "
                          "--image-size N.")
    if graph_size is not None and size != graph_size:
        raise ExportError(f"--image-size {size} contradicts {source}'s input, which is {graph_size} x {graph_size}.")
    batch = dims[0] or "dynamic"
    metadata = spec.metadata(size, source.name, inputs[0].name, model.graph.output[0].name, sha256_of(source),
                             {"batch": batch, "plugins": False, "precision": "float32"})
    try:
        original = cpu_session(source)
    except RuntimeError as error:  # onnxruntime's load failures derive from it
        raise ExportError(f"ONNX Runtime cannot load {source}: {str(error).splitlines()[0]}") from None
    attach_metadata(model, metadata)

    def reference(pixels: np.ndarray) -> np.ndarray:
        return original.run(None, {metadata.input_name: pixels})[0]

    return _write_verified(model, output, metadata, reference, "the original ONNX file",
                           (1, 2) if batch == "dynamic" else (batch,))


def _write_verified(graph: onnx.ModelProto, output: Path, metadata, reference, reference_name: str,
                    batches) -> Path:
    """Save atomically once the written file computes what `reference` does on random pixels and real face
    crops, with outputs of the width the metadata's output form says."""
    width = metadata.output_width

    def check(path: Path) -> None:
        try:
            onnx.checker.check_model(str(path))
            session = cpu_session(path)
        except (onnx.checker.ValidationError, RuntimeError) as error:
            raise ExportError(f"The written graph does not load: {str(error).splitlines()[0]}") from None
        worst = 0.0
        for batch in batches:
            for kind, pixels in parity_pixels(metadata.image_size, metadata.mean, metadata.std,
                                              metadata.preprocessing, batch).items():
                expected = np.asarray(reference(pixels), dtype=np.float32)
                (actual,) = session.run(None, {metadata.input_name: pixels})
                if actual.shape != (batch, width):
                    raise ExportError(f"{metadata.config['source']} outputs shape {tuple(actual.shape)} for {batch} "
                                      f"images, but a {metadata.output_form.kind} output over "
                                      f"{', '.join(metadata.class_names)} needs {batch} x {width}; check "
                                      f"--output-form and --classes. {output} was not written.")
                if not np.isfinite(expected).all():
                    raise ExportError(f"{reference_name} gives non-finite logits on {kind} pixels; {output} was "
                                      "not written.")
                scale = max(1.0, float(np.abs(expected).max()))  # random weights can give large logits
                difference = float(np.abs(actual - expected).max()) / scale
                worst = max(worst, difference)
                log.info("  %-6s batch %d: max |logit diff| / max(1, |logit|) %.3e", kind, batch, difference)
        if worst > FLOAT32_TOLERANCE:
            raise ExportError(f"The ONNX graph does not compute {reference_name}: relative logit difference "
                              f"{worst:.2e} exceeds {FLOAT32_TOLERANCE:g}; {output} was not written.")

    path = save_atomically(graph, output, check)
    log.info("Wrote %s (%.1f MB): %s.", path, path.stat().st_size / 1e6, describe(metadata))
    return path


def describe(metadata) -> str:
    config = metadata.config
    form = metadata.output_form
    output = f"softmax over ({', '.join(form.class_names)})" if form.kind == "softmax" else \
        f"one sigmoid logit meaning {form.positive}"
    return (f"{config['image_size']} px, {config['preprocessing']}, mean {config['mean']} std {config['std']}, "
            f"crops {config['crop_scale']:g} x the face box, {output}")


# ---- command line (options of `python -m export.onnx`) --------------------------------------------------------
def _three_numbers(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers separated by commas, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"expected two or more class names separated by commas, got {text!r}")
    return names


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("importing another classifier (--import)")
    group.add_argument("--arch", help="architecture of PyTorch weights: timm:NAME or torchvision:NAME")
    group.add_argument("--image-size", type=int, help="input size in pixels (default: the ONNX graph's)")
    group.add_argument("--mean", type=_three_numbers, help="per-channel mean of [0, 1] RGB (default ImageNet's)")
    group.add_argument("--std", type=_three_numbers, help="per-channel std (default ImageNet's; 1,1,1 with mean "
                                                          "0,0,0 for pixels / 255)")
    group.add_argument("--resize", choices=sorted(RESIZE_METHODS), default="pil-bilinear",
                       help="how crops were resized in training (cv2-bilinear: cv2.resize's default)")
    group.add_argument("--crop-scale", type=float, default=ImportSpec.crop_scale,
                       help="face crop side over the face box's longer side (default %(default)s)")
    group.add_argument("--classes", type=_names, default=ImportSpec.class_names,
                       help="class names in output order, one of them 'fake' (default real,fake)")
    group.add_argument("--output-form", choices=OUTPUT_FORMS, default="softmax",
                       help="softmax: a logit per class; sigmoid: one logit")
    group.add_argument("--sigmoid-means", choices=("fake", "real"), default="fake",
                       help="with --output-form sigmoid: the class a large logit means (default fake)")


def spec_from_args(args: argparse.Namespace) -> ImportSpec:
    defaults = ImportSpec()
    return ImportSpec(image_size=args.image_size, mean=args.mean or defaults.mean, std=args.std or defaults.std,
                      preprocessing=args.resize, crop_scale=args.crop_scale, class_names=tuple(args.classes),
                      output_form=args.output_form, sigmoid_means=args.sigmoid_means, architecture=args.arch)
