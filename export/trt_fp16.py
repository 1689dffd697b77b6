"""A mixed-precision FP16 copy of a float32 ONNX graph, for TensorRT 11's strongly typed builds.

TensorRT 11 removed the FP16 builder flag: a network runs in the types its ONNX states. NVIDIA's route is
ModelOpt AutoCast; its ONNX extra pins an onnx/onnxruntime stack that conflicts with this project's, so this
module does the same kind of conversion with plain `onnx`:

- an allowlist of ops run in float16 (convolutions, matrix products, elementwise arithmetic and activations,
  pure data movement); every other op, LayerNormalization, Softmax, reductions, BatchNormalization, Pow/Sqrt/
  Exp, Resize, casts, keeps float32, so normalization and softmax accumulate in float32;
- float32 initializers read only by float16 ops are stored as float16; a Cast is inserted wherever a tensor
  crosses between the two regions (one Cast per tensor and direction);
- graph inputs and outputs keep float32, so callers and the sidecar see the same interface.
Plugin nodes (`fmca` domain) run in float16 when listed in `fp16_plugins`: the SFCM attention kernel accumulates
its softmax in float32 whatever its I/O type; the Haar DWT reads the float32 input image directly.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fmca_rt.errors import ConfigError

FP16_OPS = frozenset({
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum",
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Relu", "LeakyRelu", "Gelu", "Erf", "Sigmoid", "Tanh", "Clip",
    "MaxPool", "AveragePool", "GlobalAveragePool", "Where",
    "Transpose", "Reshape", "Flatten", "Concat", "Slice", "Split", "Gather", "Squeeze", "Unsqueeze", "Expand",
    "Tile", "Pad", "Identity",
})
PLUGIN_DOMAIN = "fmca"
DEFAULT_FP16_PLUGINS = frozenset({"SFCMAttention"})
_FLOAT, _HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def _declare_plugin_outputs(graph: onnx.GraphProto, elem_type) -> None:
    """Plugin schemas have no type inference; stating their outputs' types lets inference carry on past them."""
    declared = {v.name for v in graph.value_info}
    for node in graph.node:
        if node.domain == PLUGIN_DOMAIN:
            graph.value_info.extend(helper.make_tensor_value_info(name, elem_type(node), None)
                                    for name in node.output if name not in declared)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    _declare_plugin_outputs(model_copy.graph, lambda node: _FLOAT)
    inferred = onnx.shape_inference.infer_shapes(model_copy)
    graph = inferred.graph
    types = {init.name: init.data_type for init in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    return types


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Constant nodes holding a float32 tensor become initializers, so one rule converts both."""
    kept = []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None and value.t.data_type == _FLOAT:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _runs_in_fp16(node: onnx.NodeProto, fp16_plugins: frozenset[str]) -> bool:
    if node.domain == PLUGIN_DOMAIN:
        return node.op_type in fp16_plugins
    return node.domain in ("", "ai.onnx") and node.op_type in FP16_OPS


def convert_to_mixed_fp16(model: onnx.ModelProto, fp16_plugins=DEFAULT_FP16_PLUGINS) -> onnx.ModelProto:
    """A converted copy with float32 inputs and outputs; the input model is not modified."""
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        raise ConfigError("The FP16 conversion does not handle control flow (If/Loop/Scan subgraphs).")
    _constants_to_initializers(graph)
    types = _elem_types(converted)
    fp16_plugins = frozenset(fp16_plugins)
    initializers = {init.name: init for init in graph.initializer}

    # The precision each float tensor has after conversion: set by its producer.
    half_tensors: set[str] = set()
    for node in graph.node:
        if _runs_in_fp16(node, fp16_plugins):
            half_tensors.update(o for o in node.output if types.get(o) == _FLOAT or node.domain == PLUGIN_DOMAIN)

    # Initializers read only by float16 ops are stored in float16; those with float32 readers too stay float32
    # and reach their float16 readers through a Cast, like any other tensor crossing regions.
    readers: dict[str, list[bool]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name in initializers and initializers[name].data_type == _FLOAT:
                readers[name].append(_runs_in_fp16(node, fp16_plugins))
    graph_io = {v.name for v in [*graph.input, *graph.output]}
    for name, fp16_flags in readers.items():
        if all(fp16_flags) and name not in graph_io:
            array = numpy_helper.to_array(initializers[name])
            initializers[name].CopyFrom(numpy_helper.from_array(_to_half(array, name), name))
            half_tensors.add(name)

    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            casts[key] = f"{name}__as_{'fp16' if to == _HALF else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=f"{casts[key]}__cast"))
        return casts[key]

    for node in graph.node:
        wants_half = _runs_in_fp16(node, fp16_plugins)
        for i, name in enumerate(node.input):
            is_float = types.get(name) == _FLOAT or name in half_tensors
            if not name or not is_float:
                continue
            if wants_half and name not in half_tensors:
                node.input[i] = cast(name, _HALF)
            elif not wants_half and name in half_tensors:
                node.input[i] = cast(name, _FLOAT)
        new_nodes.append(node)

    for value in graph.output:
        if value.name in half_tensors:
            _reroute_output_through_cast(new_nodes, value.name)
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    _declare_plugin_outputs(graph, lambda node: _HALF if _runs_in_fp16(node, fp16_plugins) else _FLOAT)
    onnx.checker.check_model(converted)
    return onnx.shape_inference.infer_shapes(converted, strict_mode=True)


def _reroute_output_through_cast(nodes: list[onnx.NodeProto], output: str) -> None:
    """A float16 graph output keeps its name and float32 type: its producer writes a float16 twin, then a Cast."""
    twin = f"{output}__fp16"
    for node in nodes:
        node.input[:] = [twin if name == output else name for name in node.input]
        node.output[:] = [twin if name == output else name for name in node.output]
    nodes.append(helper.make_node("Cast", [twin], [output], to=_FLOAT, name=f"{output}__cast"))


def _to_half(array: np.ndarray, name: str) -> np.ndarray:
    finite = np.abs(array[np.isfinite(array)]) if array.size else array
    if finite.size and finite.max() > np.finfo(np.float16).max:
        raise ConfigError(f"Weight {name} has values beyond float16's range ({finite.max():.3g}); "
                          "build this model in float32.")
    return array.astype(np.float16)


def precision_summary(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes run on float16 and float32 tensors, for the build log."""
    types = _elem_types(model)
    summary = {"fp16": 0, "fp32": 0, "casts": 0}
    for node in model.graph.node:
        if node.op_type == "Cast":
            summary["casts"] += 1
            continue
        kinds = {types.get(name) for name in node.output}
        summary["fp16"] += _HALF in kinds
        summary["fp32"] += _FLOAT in kinds and _HALF not in kinds
    return summary
