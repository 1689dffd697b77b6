"""INT8 forms of a float32 FMCA-Net ONNX file for OpenVINO, written as OpenVINO IR (`.xml` + `.bin`).

- `quantize_with_nncf`: NNCF's post-training quantization with its transformer preset, calibrated on face
  crops: static INT8 for every matrix product and convolution, activation ranges fixed by calibration. What
  an OpenVINO user gets by following NNCF's guide; the benchmark's `openvino-int8` rows.
- `quantize_for_cpu_mode`: the CPU mode's OpenVINO form. Static INT8 (NNCF, calibrated on face crops) for the
  bulk of the work: the ViT blocks' four matrix products, the token squeeze-excitation's products, the
  frequency projection and the frequency CNN's convolutions after its first. The cross attention's and the
  head's matrix products get INT8 weights with activations quantized at run time per token (groups of
  `embed_dim` values, OpenVINO's dynamic quantization; the group size travels in the IR's runtime options);
  the patch embedding and the first frequency convolution stay float.
Why not NNCF's static INT8 everywhere: measured against float32 on the benchmark's face crops (max |delta
P(fake)|, calls of 8), it moved P(fake) by 0.017 on the paper's model with random weights and 0.059 on the
depth-1 reference checkpoint, against 0.0015 and 0.0074 for this form (benchmarks/RESULTS.md). The parts
left out, each measured by making it static on top of the ViT blocks' products (`python -m
fmca_rt.bench.int8_parts`; RESULTS.md, "Choosing the static INT8 parts"): the other matrix products (cross
attention, head, frequency pooling: 0.017 on the paper's model, 0.066 on the reference checkpoint, 0.18 on a
trained tiny model) and the first frequency convolution, which reads the raw wavelet coefficients (0.28 on
the trained tiny model, against 0.011 for the ViT blocks alone).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import numpy as np

from ..errors import BackendError, DependencyError
from .cpu_int8 import file_sha256, remove_superseded
from .openvino import first_line, import_openvino, read_metadata, read_model, write_metadata

NNCF_HINT = "pip install 'fmca-rt[openvino]'"
PRECISION = "int8-static-bulk-rest-dynamic"  # the CPU mode's form, in its metadata (`extra.precision`)
# Part of the cache key and of the CPU mode's profile: raise it whenever quantize_for_cpu_mode changes.
RECIPE_VERSION = 4


def import_nncf():
    try:
        import nncf
    except ImportError:
        raise DependencyError(f"Quantizing for OpenVINO needs NNCF, but 'nncf' is not installed: "
                              f"{NNCF_HINT}.") from None
    return nncf


@contextmanager
def nncf_quiet(nncf) -> Iterator[None]:
    """NNCF logs every step and draws progress bars and tables on stdout, where the CLI writes its results:
    keep its warnings and errors, drop the rest."""
    previous = logging.getLogger("nncf").level
    nncf.set_log_level(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        nncf.set_log_level(previous)


def save_ir_atomically(model, output: str | Path) -> Path:
    """Write `model` as `output` (.xml) and its .bin beside it. Both are written under temporary names in the
    same folder and moved into place .bin first, .xml last: a reader that finds the .xml finds a whole model."""
    ov = import_openvino()
    output = Path(output)
    if output.suffix.lower() != ".xml":
        raise BackendError(f"An OpenVINO model is saved as .xml (with a .bin beside it), not {output.name}.")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{output.stem}.", dir=output.parent))
    except OSError as error:
        raise BackendError(f"Cannot write {output}: {error.strerror}.") from None
    try:
        ov.save_model(model, str(scratch / "model.xml"), compress_to_fp16=False)  # float weights stay float32
        os.replace(scratch / "model.bin", output.with_suffix(".bin"))
        os.replace(scratch / "model.xml", output)
    except (OSError, RuntimeError) as error:  # OpenVINO reports a failed write as RuntimeError
        raise BackendError(f"Cannot write {output}: {getattr(error, 'strerror', None) or first_line(error)}.") from None
    finally:
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
    return output


def _mark_precision(model, source: str, precision: str) -> None:
    metadata = read_metadata(model, source)
    write_metadata(model, dataclasses.replace(metadata, extra={**metadata.extra, "precision": precision}))


def quantize_with_nncf(float_onnx: str | Path, output: str | Path, calibration_pixels: list[np.ndarray]) -> Path:
    """Static INT8 by NNCF's `quantize` (transformer preset, every other setting its default), calibrated on
    `calibration_pixels` (preprocessed 1 x 3 x S x S arrays)."""
    ov, nncf = import_openvino(), import_nncf()
    if not calibration_pixels:
        raise BackendError("NNCF needs calibration crops to quantize the model; none were given.")
    model = read_model(ov.Core(), float_onnx)
    try:
        with nncf_quiet(nncf):
            quantized = nncf.quantize(model, nncf.Dataset(calibration_pixels), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(calibration_pixels))
    except (RuntimeError, ValueError) as error:
        raise BackendError(f"NNCF cannot quantize {float_onnx}: {first_line(error)}") from None
    _mark_precision(quantized, str(float_onnx), "int8-nncf")
    return save_ir_atomically(quantized, output)


FREQUENCY_CONVOLUTIONS = "freq_branch.conv_layers."  # their weights' names, kept by the exported graph


def _constant_inputs(node) -> list[str]:
    return [source.get_friendly_name() for source in (node.input(i).get_source_output().get_node()
                                                      for i in range(node.get_input_size()))
            if source.get_type_name() == "Constant"]


def _weight_is_constant(op) -> bool:
    weight = op.input(1).get_source_output().get_node()
    while weight.get_type_name() in ("Convert", "Transpose", "Reshape"):
        weight = weight.input(0).get_source_output().get_node()
    return weight.get_type_name() == "Constant"


def _products_adding(prefix: str) -> Callable:
    """Matrix products whose output is added to a bias named `prefix...` (the checkpoint's names)."""
    def select(model) -> list[str]:
        return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
                and any(target.get_node().get_type_name() == "Add"
                        and any(name.startswith(prefix) for name in _constant_inputs(target.get_node()))
                        for target in op.output(0).get_target_inputs())]
    return select


def _frequency_convolutions(model) -> list[str]:
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
            and any(name.startswith(FREQUENCY_CONVOLUTIONS) for name in _constant_inputs(op))]


def _other_weight_products(model) -> list[str]:
    named = {name for part in ("vit-blocks", "token-se", "frequency-projection") for name in PARTS[part](model)}
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
            and op.get_friendly_name() not in named and _weight_is_constant(op)]


# The parts of FMCA-Net that can be made static INT8, each a function of the OpenVINO model giving its
# operations' names.
PARTS: dict[str, Callable] = {
    "vit-blocks": _products_adding("vit.blocks."),  # qkv, proj, fc1, fc2 of every block
    "token-se": _products_adding("token_se."),
    "frequency-projection": _products_adding("freq_branch.projection."),
    "frequency-convolutions": lambda model: _frequency_convolutions(model)[1:],
    "first-frequency-convolution": lambda model: _frequency_convolutions(model)[:1],  # reads the wavelet coefficients
    "other-products": _other_weight_products,  # cross attention, head, frequency pooling
}
CPU_MODE_PARTS = ("vit-blocks", "token-se", "frequency-projection", "frequency-convolutions")


def static_int8_operations(model, parts: Sequence[str] = CPU_MODE_PARTS) -> list[str]:
    return [name for part in parts for name in PARTS[part](model)]


def quantize_for_cpu_mode(float_onnx: str | Path, output: str | Path, calibration_pixels: list[np.ndarray],
                          parts: Sequence[str] = CPU_MODE_PARTS) -> Path:
    """The CPU mode's OpenVINO form (module docstring), calibrated on `calibration_pixels` (1 x 3 x S x S);
    `parts` (of PARTS) get static INT8, for measuring other choices (fmca_rt.bench.int8_parts)."""
    ov, nncf = import_openvino(), import_nncf()
    model = read_model(ov.Core(), float_onnx)
    static = set(static_int8_operations(model, parts))
    others = [op.get_friendly_name() for op in model.get_ordered_ops()
              if op.get_type_name() in ("MatMul", "Convolution") and op.get_friendly_name() not in static]
    try:
        with nncf_quiet(nncf):
            if static:
                model = nncf.quantize(model, nncf.Dataset(calibration_pixels), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(calibration_pixels),
                                      ignored_scope=nncf.IgnoredScope(names=others, validate=False))
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                          ignored_scope=nncf.IgnoredScope(types=["Convolution"], validate=False))
    except (RuntimeError, ValueError) as error:
        raise BackendError(f"NNCF cannot quantize {float_onnx} for the CPU mode: {first_line(error)}") from None
    embed_dim = read_metadata(model, str(float_onnx)).config.get("embed_dim")
    if embed_dim is not None:  # FMCA-Net: one group per token; an imported classifier keeps OpenVINO's default
        model.set_rt_info(str(int(embed_dim)), ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"])
    _mark_precision(model, str(float_onnx), PRECISION)
    return save_ir_atomically(model, output)


def cached_openvino_int8(float_onnx: str | Path, cache_dir: str | Path,
                         calibration_pixels: Callable[[], list[np.ndarray]]) -> Path:
    """The CPU mode's OpenVINO form of `float_onnx`, made on first use and then read from `cache_dir` (keyed
    by the float model's SHA-256 and RECIPE_VERSION; the calibration crops are fixed by the recipe).
    `calibration_pixels` is called only when the form must be made: preparing them costs about a second."""
    float_onnx, cache_dir = Path(float_onnx), Path(cache_dir)
    cached = cache_dir / f"{file_sha256(float_onnx)[:32]}.ov{RECIPE_VERSION}.int8.xml"
    if not cached.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        quantize_for_cpu_mode(float_onnx, cached, calibration_pixels())
        remove_superseded(cached, f"{cached.name.split('.')[0]}.ov*.int8.*")
    return cached
