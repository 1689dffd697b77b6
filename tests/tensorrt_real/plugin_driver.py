"""NVIDIA's `tensorrt.plugin` objects driven as TensorRT's ONNX parser and builder drive them, on a CPU.

What only libnvinfer makes is stood in for, and nothing else:
- the plugin registry (`trt.get_plugin_registry()` is null with the stub library): `RecordingRegistry` keeps the
  creators `tensorrt.plugin` registers;
- TensorRT's symbolic dimensions and their builder (`IDimensionExpr`, `IExprBuilder`): `ExpressionBuilder` makes
  dimension expressions that carry a value (the size at which the shapes are checked) and whether it is a build-time
  constant. They are `trt.IDimensionExpr` instances without a C++ object behind them: NVIDIA's Python code accepts
  them, and what it hands back to C++ (DimsExprs, ISymExpr) is never read back here.
- the launch-parameter and argument sinks TensorRT passes to `get_launch_params`.
Everything else (creators, the plugin objects, ShapeExpr arithmetic, KernelLaunchParams, SymIntExprs, the
dynamic tensor descriptors) is the real code. The registered callbacks' own results are recorded on the way.
"""

from __future__ import annotations

import operator
import types
from dataclasses import dataclass

import numpy as np

ARCH = 87  # the tests serve Jetson Orin's kernels (portable PTX)
_OPERATIONS = {"SUM": operator.add, "PROD": operator.mul, "SUB": operator.sub, "FLOOR_DIV": operator.floordiv,
               "CEIL_DIV": lambda a, b: -(-a // b), "MAX": max, "MIN": min, "EQUAL": lambda a, b: int(a == b),
               "LESS": lambda a, b: int(a < b)}


class RecordingRegistry:
    def __init__(self):
        self.creators = {}

    def register_creator(self, creator, plugin_namespace=""):
        self.creators[(creator.name, creator.plugin_version, plugin_namespace)] = creator
        return True

    def get_creator(self, type, version, plugin_namespace=""):
        return self.creators.get((type, version, plugin_namespace))


def expression_builder(trt):
    class Dimension(trt.IDimensionExpr):
        def is_constant(self):
            return self.constant

        def get_constant_value(self):
            return self.value

        def is_size_tensor(self):
            return False

    def dimension(value: int, constant: bool):
        made = trt.IDimensionExpr.__new__(Dimension)  # no C++ object: TensorRT's builder would make it
        made.value, made.constant = int(value), constant
        return made

    class ExpressionBuilder:
        def constant(self, value):
            return dimension(value, True)

        def operation(self, op, first, second):
            return dimension(_OPERATIONS[op.name](first.value, second.value), first.constant and second.constant)

        def declare_size_tensor(self, *args):
            raise AssertionError("the fmca plugins declare no size tensors")

    return ExpressionBuilder(), dimension


def value(expression) -> int:
    """The size a real `tensorrt.plugin` expression (ShapeExpr, SymInt32) stands for here."""
    return expression._expr.value


def parser_fields(trt, creator, node_attributes: dict):
    """(PluginFieldCollection, the arrays it points into) as onnx-tensorrt's importer builds it: the creator's
    fields in its order, each from the node attribute of that name, FLOAT/FLOATS as float32 arrays (also for one
    value), INT as int32, STRING as NUL-terminated characters; fields the node lacks are left out. A PluginField
    only points at its data: keep the arrays alive while the collection is used."""
    fields, arrays = [], []
    for declared in creator.field_names:
        if declared.name not in node_attributes:
            continue
        data = node_attributes[declared.name]
        if isinstance(data, bytes):
            array, kind = np.frombuffer(data + b"\0", np.int8), trt.PluginFieldType.CHAR
        elif np.asarray(data).dtype.kind == "f":
            array, kind = np.atleast_1d(np.asarray(data, np.float32)), trt.PluginFieldType.FLOAT32
        else:
            array, kind = np.atleast_1d(np.asarray(data, np.int32)), trt.PluginFieldType.INT32
        arrays.append(array)
        fields.append(trt.PluginField(declared.name, array, kind))
    return trt.PluginFieldCollection(fields), arrays


def tensor_desc(trt, shape, dtype):
    desc = trt.DynamicPluginTensorDesc()
    desc.desc.dims, desc.desc.type, desc.desc.format = trt.Dims(shape), dtype, trt.TensorFormat.LINEAR
    desc.min = desc.opt = desc.max = trt.Dims(shape)
    return desc


@dataclass
class PluginRun:
    output_types: list
    output_shapes: list  # the register callback's output shape expressions, evaluated
    combinations: list  # (type, format) per I/O position, per supported combination
    kernel_name: bytes
    ptx: bytes
    launch: dict  # grid_x ... shared_mem, evaluated
    scalars: list  # the integer kernel arguments, evaluated
    scalar_count_set: int  # what get_launch_params told TensorRT's argument setter


def run_plugin(trt, creator, node_attributes: dict, input_shapes, dynamic_axes, dtype) -> PluginRun:
    """Create the plugin as the parser does and walk it through TensorRT's build calls, at `input_shapes` (the
    axes in `dynamic_axes` symbolic, the others build-time constants) with every I/O tensor of `dtype`."""
    builder, dimension = expression_builder(trt)
    fields, _arrays = parser_fields(trt, creator, node_attributes)
    plugin = creator.create_plugin(creator.name, creator.plugin_namespace, fields, trt.TensorRTPhase.BUILD,
                                   trt.QuickPluginCreationRequest.STRICT_AOT)
    recorded = {}

    def recording(name, callback):
        def run(*args, **kwargs):
            recorded[name] = callback(*args, **kwargs)
            return recorded[name]
        return run

    plugin.register_function = recording("register", plugin.register_function)
    plugin.aot_impl_function = recording("aot_impl", plugin.aot_impl_function)

    count = len(input_shapes)
    output_types = plugin.get_output_data_types([dtype] * count, [len(s) for s in input_shapes])
    expressions = [[dimension(size, axis not in dynamic_axes) for axis, size in enumerate(shape)]
                   for shape in input_shapes]
    plugin.get_output_shapes(expressions, [], builder)
    outputs = recorded["register"] if isinstance(recorded["register"], tuple) else (recorded["register"],)
    output_shapes = [tuple(value(e) for e in desc.shape_expr) for desc in outputs]

    io = [tensor_desc(trt, shape, dtype) for shape in [*input_shapes, *output_shapes]]
    supported = plugin.get_supported_format_combinations(io, count)
    width = len(io)
    combinations = [[(d.type, d.format) for d in supported[i:i + width]] for i in range(0, len(supported), width)]
    plugin.configure_plugin(io[:count], io[count:])
    plugin.set_tactic((plugin.get_valid_tactics() or [0])[0])

    launch_sink, setter = types.SimpleNamespace(), _ArgumentSetter()
    plugin.get_launch_params(expressions, io, count, launch_sink, setter, builder)
    name, ptx, params, scalars = recorded["aot_impl"]
    assert plugin.get_kernel([d.desc for d in io[:count]], [d.desc for d in io[count:]]) == (
        name, ptx if isinstance(ptx, bytes) else ptx.encode())
    launch = {key: value(getattr(params, key)) for key in
              ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_mem")}
    return PluginRun(output_types, output_shapes, combinations, name, ptx, launch, [value(s) for s in scalars],
                     setter.nbSymExprs)


class _ArgumentSetter:
    """TensorRT's ISymExprs sink for the kernel's integer arguments (what it receives is not read back)."""

    def __init__(self):
        self.nbSymExprs, self.items = None, {}

    def __setitem__(self, index, expression):
        self.items[index] = expression
