"""A reader for frozen TensorFlow graphs (``GraphDef`` protobuf files), enough to load weights.

TensorFlow itself is a 500 MB dependency that the engine would use for nothing but reading
one file, so this decodes the protobuf wire format directly. A ``GraphDef`` is a list of
``NodeDef`` messages (field 1); each node has a name (1), an op type (2), its inputs (3) and a
map of attributes (5). Only what frozen inference graphs use is decoded: constant tensors
(float32, int32, int64, stored packed or as ``tensor_content``), integers, floats, strings,
booleans, types and lists of those.

Every read checks bounds and raises :class:`ValueError` on a truncated or corrupt file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TensorFlow's DataType enum, for the types constants in a frozen graph use.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}
_MAX_TENSOR_ELEMENTS = 1 << 28  # far above any face model; a corrupt shape cannot ask for more

AttrValue = np.ndarray | int | float | bool | bytes | list


@dataclass
class GraphNode:
    """One operation of the graph: its name, op type, input names and decoded attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, AttrValue] = field(default_factory=dict)


class _Wire:
    """Sequential reader over one protobuf message's bytes."""

    def __init__(self, data: memoryview, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def error(self, what: str) -> ValueError:
        return ValueError(f"corrupt or truncated TensorFlow graph {self.source}: {what}")

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise self.error("bad varint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def fields(self):
        """Yield ``(field number, wire type, value)``; length-delimited values as memoryviews."""
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                yield number, wire, self.varint()
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                yield number, wire, self._take(size)
            elif wire == 2:
                yield number, wire, self._take(self.varint())
            else:
                raise self.error(f"unsupported wire type {wire}")

    def _take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise self.error("field runs past the end of its message")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def sub(self, data: memoryview) -> _Wire:
        return _Wire(data, self.source)


def _signed(value: int) -> int:
    """A varint holding a two's-complement int64 (protobuf's encoding of negative numbers)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(wire: _Wire, data: memoryview) -> list[int]:
    inner = wire.sub(data)
    values = []
    while inner.pos < len(data):
        values.append(_signed(inner.varint()))
    return values


def _shape(wire: _Wire, data: memoryview) -> list[int]:
    """``TensorShapeProto``: repeated ``dim`` (2), each with a ``size`` (1)."""
    dims = []
    for number, _, value in wire.sub(data).fields():
        if number == 2:
            size = 0
            for dim_number, _, dim_value in wire.sub(value).fields():
                if dim_number == 1:
                    size = _signed(dim_value)
            dims.append(size)
    return dims


def _tensor(wire: _Wire, data: memoryview) -> np.ndarray:
    """``TensorProto``: a dtype (1), a shape (2), then raw content (4) or typed value lists."""
    dtype, shape, content = None, [], None
    floats: list[float] = []
    ints: list[int] = []
    for number, kind, value in wire.sub(data).fields():
        if number == 1:
            dtype = _DTYPES.get(value)
            if dtype is None:
                raise wire.error(f"unsupported tensor type {value}")
        elif number == 2:
            shape = _shape(wire, value)
        elif number == 4:
            content = bytes(value)
        elif number == 5:  # float_val, packed or one at a time
            packed = kind == 2
            floats += np.frombuffer(value, "<f4").tolist() if packed else [_float(value)]
        elif number in (7, 10):  # int_val, int64_val
            ints += _packed_varints(wire, value) if kind == 2 else [_signed(value)]
    if dtype is None:
        raise wire.error("tensor without a type")
    count = int(np.prod(shape)) if shape else 1
    if any(d < 0 for d in shape) or count > _MAX_TENSOR_ELEMENTS:
        raise wire.error(f"implausible tensor shape {shape}")
    if content is not None:
        array = np.frombuffer(content, np.dtype(dtype).newbyteorder("<"))
        if array.size != count:
            raise wire.error(f"tensor content has {array.size} values, its shape {shape}")
        return array.astype(dtype).reshape(shape)
    values = floats if dtype in (np.float32, np.float64) else ints
    if not values:
        return np.zeros(shape, dtype)
    if len(values) not in (1, count):
        raise wire.error(f"tensor has {len(values)} values, its shape {shape}")
    # A single stored value fills the whole shape (TensorFlow's encoding of constant fills).
    if len(values) == 1:
        return np.full(shape, values[0], dtype)
    return np.asarray(values, dtype).reshape(shape)


def _float(value: memoryview) -> float:
    return float(np.frombuffer(value, "<f4")[0])


def _list(wire: _Wire, data: memoryview) -> list:
    """``AttrValue.ListValue``: strings (2), ints (3), floats (4), booleans (5), types (6)."""
    items: list = []
    for number, kind, value in wire.sub(data).fields():
        if number == 2:
            items.append(bytes(value))
        elif number in (3, 5, 6):
            items += _packed_varints(wire, value) if kind == 2 else [_signed(value)]
        elif number == 4:
            items += np.frombuffer(value, "<f4").tolist() if kind == 2 else [_float(value)]
    return items


def _attr_value(wire: _Wire, data: memoryview) -> AttrValue | None:
    for number, _, value in wire.sub(data).fields():
        if number == 1:
            return _list(wire, value)
        if number == 2:
            return bytes(value)
        if number in (3, 6):
            return _signed(value)
        if number == 4:
            return _float(value)
        if number == 5:
            return bool(value)
        if number == 7:
            return _shape(wire, value)
        if number == 8:
            return _tensor(wire, value)
    return None


def _node(wire: _Wire, data: memoryview) -> GraphNode:
    node = GraphNode(name="", op="")
    for number, _, value in wire.sub(data).fields():
        if number == 1:
            node.name = bytes(value).decode()
        elif number == 2:
            node.op = bytes(value).decode()
        elif number == 3:
            node.inputs.append(bytes(value).decode())
        elif number == 5:
            key, attr = "", None
            for entry_number, _, entry_value in wire.sub(value).fields():
                if entry_number == 1:
                    key = bytes(entry_value).decode()
                elif entry_number == 2:
                    attr = _attr_value(wire, entry_value)
            if attr is not None:
                node.attrs[key] = attr
    if not node.name or not node.op:
        raise wire.error("a node without a name or an op")
    return node


def read_graph(path: str | Path) -> list[GraphNode]:
    """The nodes of a frozen ``GraphDef`` file, in file order."""
    data = Path(path).read_bytes()
    wire = _Wire(memoryview(data), str(path))
    try:
        nodes = [_node(wire, value) for number, _, value in wire.fields() if number == 1]
    except (UnicodeDecodeError, OverflowError) as exc:
        raise wire.error(str(exc)) from None
    if not nodes:
        raise wire.error("no nodes")
    return nodes
