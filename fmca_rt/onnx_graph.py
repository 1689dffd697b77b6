"""The names and ranks of an ONNX graph's inputs and outputs, read from the file without the onnx package.

`import fmca_rt` needs only NumPy and OpenCV, yet a model handed to OpenCV must be checked first: OpenCV's
DNN importer can crash the process (a segmentation fault) on a graph it does not expect. An ONNX file is a
protocol-buffers message; the few fields needed here are read directly from its wire format:

    ModelProto.graph (7) -> GraphProto.input (11) / output (12) / initializer (5)
    ValueInfoProto.name (1), .type (2) -> TypeProto.tensor_type (1) -> .shape (2) -> TensorShapeProto.dim (1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit
_FIXED_SIZES = {1: 8, 5: 4}


class NotOnnx(ValueError):
    """The bytes are not a protocol-buffers message of the expected shape."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise NotOnnx("truncated varint")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            return value, position


def _fields(data: bytes):
    """(field number, wire type, value) of each field of one message; value is bytes or an int."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire in _FIXED_SIZES:
            value, position = data[position:position + _FIXED_SIZES[wire]], position + _FIXED_SIZES[wire]
        else:
            raise NotOnnx(f"wire type {wire}")
        if position > len(data) or field == 0:
            raise NotOnnx("field beyond the end")
        yield field, wire, value


def _messages(data: bytes, number: int) -> list[bytes]:
    return [value for field, wire, value in _fields(data) if field == number and wire == 2]


@dataclass(frozen=True)
class GraphIO:
    inputs: dict[str, int | None]  # name -> rank (None when the file gives no shape); initializers excluded
    outputs: dict[str, int | None]


def _value_infos(graph: bytes, number: int) -> dict[str, int | None]:
    infos = {}
    for info in _messages(graph, number):
        names = _messages(info, 1)
        if not names:
            raise NotOnnx("a value without a name")
        rank = None
        for kind in _messages(info, 2):
            for tensor in _messages(kind, 1):
                shapes = _messages(tensor, 2)
                rank = len(_messages(shapes[0], 1)) if shapes else None
        infos[bytes(names[0]).decode("utf-8", "replace")] = rank
    return infos


def read_graph_io(path: str | Path) -> GraphIO:
    """Inputs and outputs of the ONNX model at `path`; NotOnnx when the file is not one."""
    data = memoryview(Path(path).read_bytes())  # slices of a memoryview copy nothing
    graphs = _messages(data, 7)
    if len(graphs) != 1:
        raise NotOnnx("no graph")
    graph = graphs[0]
    initializers = {bytes(names[0]).decode("utf-8", "replace") for tensor in _messages(graph, 5)
                    if (names := [v for f, w, v in _fields(tensor) if f == 8 and w == 2])}
    inputs = {name: rank for name, rank in _value_infos(graph, 11).items() if name not in initializers}
    return GraphIO(inputs, _value_infos(graph, 12))
