"""A reader for TensorFlow.js graph models (``model.json`` plus its weight files).

A graph model is a frozen ``GraphDef`` written as JSON (``modelTopology``) with its constants
moved to binary files that ``weightsManifest`` describes in order: name, shape, dtype and an
optional quantisation (float16, or 8/16-bit affine). This turns one into the same
:class:`~facecloak.models.tf_graph.GraphNode` list that
:func:`~facecloak.models.tf_graph.read_graph` gives for a protobuf file, so one program
builder (:mod:`facecloak.models.tf_program`) runs both. Every size is checked and a mismatch
raises :class:`ValueError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import numpy as np

from facecloak.models.tf_graph import AttrValue, GraphNode

_DTYPES = {"float32": np.float32, "int32": np.int32}
_QUANTISED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}
_MAX_WEIGHT_BYTES = 1 << 30  # far above any face model
# TensorFlow's DataType enum values, as read_graph gives type attributes.
_TYPE_ENUM = {"DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_INT64": 9, "DT_BOOL": 10}


def read_tfjs_graph(model_json: str | Path) -> list[GraphNode]:
    """The nodes of a TensorFlow.js graph model, constants filled from its weight files."""
    path = Path(model_json)
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
        topology = model["modelTopology"]["node"]
        manifest = model["weightsManifest"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a TensorFlow.js graph model: {path} ({exc})") from None
    try:
        weights = _read_weights(path.parent, manifest, str(path))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: malformed weights manifest ({exc})") from None
    nodes = []
    for entry in topology:
        node = GraphNode(
            name=str(entry.get("name", "")),
            op=str(entry.get("op", "")),
            inputs=[str(i) for i in entry.get("input", [])],
            attrs={key: _attr(value) for key, value in entry.get("attr", {}).items()},
        )
        if not node.name or not node.op:
            raise ValueError(f"{path}: a node without a name or an op")
        if node.op == "Const":
            if node.name not in weights:
                raise ValueError(f"{path}: constant {node.name} has no weights")
            node.attrs["value"] = weights[node.name]
        nodes.append(node)
    if not nodes:
        raise ValueError(f"{path}: no nodes")
    return nodes


def _read_weights(folder: Path, manifest: list, source: str) -> dict[str, np.ndarray]:
    """Each group's files concatenated, cut into its weights in manifest order."""
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join(_group_file(folder, name, source) for name in group["paths"])
        position = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quantisation = spec.get("quantization")
            stored = _stored_dtype(spec, quantisation, source)
            size = count * np.dtype(stored).itemsize
            if count < 0 or position + size > len(data):
                raise ValueError(f"truncated TensorFlow.js weights in {source}: {spec['name']}")
            raw = np.frombuffer(data, np.dtype(stored).newbyteorder("<"), count, position)
            position += size
            weights[spec["name"]] = _dequantise(raw, spec, quantisation).reshape(shape)
        if position != len(data):
            raise ValueError(f"{source}: {len(data) - position} bytes of weights left over")
    return weights


def _group_file(folder: Path, name: str, source: str) -> bytes:
    """One weight file, which must lie beside the model (no paths out of its folder)."""
    if Path(name).name != name:
        raise ValueError(f"{source}: weight file {name!r} is outside the model's folder")
    path = folder / name
    try:
        if path.stat().st_size > _MAX_WEIGHT_BYTES:
            raise ValueError(f"{source}: weight file {name} is implausibly large")
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{source}: cannot read its weight file {name} ({exc.strerror})") from None


def _stored_dtype(spec: dict, quantisation: dict | None, source: str) -> type:
    if quantisation:
        stored = _QUANTISED.get(quantisation.get("dtype"))
    else:
        stored = _DTYPES.get(spec.get("dtype"))
    if stored is None:
        raise ValueError(f"{source}: unsupported weight type of {spec.get('name')}")
    return stored


def _dequantise(raw: np.ndarray, spec: dict, quantisation: dict | None) -> np.ndarray:
    """The weight in its original type: float16 widened, affine integers scaled back."""
    target = _DTYPES[spec.get("dtype", "float32")]
    if not quantisation or quantisation["dtype"] == "float16":
        return raw.astype(target)
    return (raw.astype(np.float32) * quantisation["scale"] + quantisation["min"]).astype(target)


def _attr(value: dict) -> AttrValue:
    """An ``AttrValue`` in protobuf's JSON mapping, in the forms ``read_graph`` gives."""
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return [int(i) for i in items["i"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        if "s" in items:
            return [_bytes(s) for s in items["s"]]
        return []
    if "s" in value:
        return _bytes(value["s"])
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return _TYPE_ENUM.get(str(value["type"]), 0)
    return b""


def _bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"an attribute string is not base64: {text[:20]!r}") from None
