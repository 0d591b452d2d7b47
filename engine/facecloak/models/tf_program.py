"""A frozen TensorFlow inference graph run op by op in PyTorch, so that it is differentiable.

FaceNet (a frozen ``GraphDef``) and the HSE MobileNet (a TensorFlow.js graph model) arrive as
graphs, not as code. Their ops are few and plain (convolutions, batch-norm arithmetic,
activations, pooling), so each node becomes one PyTorch call on NCHW tensors; TensorFlow's
NHWC axes, kernels and SAME padding are translated here and nowhere else. Only the nodes the
output depends on are built, so the heads a graph carries besides (age, gender) cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecloak.models.tf_graph import GraphNode

# TensorFlow's NHWC axes as PyTorch's NCHW axes, for 4-D tensors.
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}

Operation = Callable[[list], torch.Tensor]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: (before, after); any odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TfConv(nn.Module):
    """A TensorFlow Conv2D or DepthwiseConv2dNative with a bias that folded ops fill in.

    ``kernel`` is TensorFlow's HWIO (or HW, in, multiplier for a depthwise kernel).
    """

    def __init__(self, kernel: np.ndarray, stride: int, same: bool, depthwise: bool) -> None:
        super().__init__()
        height, width, inputs, outputs = kernel.shape
        if depthwise:  # one filter per input channel (times a multiplier): groups = inputs
            weight = kernel.reshape(height, width, inputs * outputs, 1).transpose(2, 3, 0, 1)
            outputs, groups = inputs * outputs, inputs
        else:
            weight, groups = kernel.transpose(3, 2, 0, 1), 1
        self.conv = nn.Conv2d(inputs, outputs, (height, width), stride, groups=groups)
        self.conv.weight.data = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
        self.conv.bias.data.zero_()
        self.same = same
        if same and stride == 1 and height % 2 and width % 2:  # symmetric: let the conv pad
            self.conv.padding = (height // 2, width // 2)
            self.same = False

    def scale_output(self, factor: np.ndarray) -> None:
        """Fold a per-channel multiply of the output into the weights (and bias)."""
        factor_t = torch.from_numpy(np.asarray(factor, np.float32)).expand(self.conv.out_channels)
        self.conv.weight.data *= factor_t.view(-1, 1, 1, 1)
        self.conv.bias.data *= factor_t

    def shift_output(self, shift: np.ndarray) -> None:
        """Fold a per-channel add to the output into the bias."""
        shift_t = torch.from_numpy(np.asarray(shift, np.float32)).expand(self.conv.out_channels)
        self.conv.bias.data += shift_t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            kh, kw = self.conv.kernel_size
            top, bottom = same_padding(x.shape[2], kh, self.conv.stride[0])
            left, right = same_padding(x.shape[3], kw, self.conv.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return self.conv(x)


class TfProgram(nn.Module):
    """The part of a graph that computes ``output`` from ``input``, as PyTorch calls.

    A bias, batch-norm multiply or add that follows a convolution (its only reader) is folded
    into the convolution: the same arithmetic in one op, which matters most in the backward
    pass the cloak optimiser runs at every step.
    """

    def __init__(self, nodes: list[GraphNode], input_name: str, output_name: str) -> None:
        super().__init__()
        self.input_name, self.output_name = input_name, output_name
        self.convs = nn.ModuleList()
        self.program: list[tuple[str, Operation, list[str]]] = []
        self._conv_index: dict[str, int] = {}  # convolution node name -> index in ``convs``
        # Constants an op reads at run time live in buffers, so they move with the module to
        # the GPU once instead of being copied on every call.
        self._buffers_by_node: dict[str, str] = {}
        self._compile(nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {node: getattr(self, buffer) for node, buffer in self._buffers_by_node.items()}
        values[self.input_name] = x
        for name, operation, inputs in self.program:
            values[name] = operation([values[i] for i in inputs])
        return values[self.output_name]

    # -- building the program --------------------------------------------------------------

    def _compile(self, nodes: list[GraphNode]) -> None:
        by_name = {node.name: node for node in nodes}
        for name in (self.input_name, self.output_name):
            if name not in by_name:
                raise ValueError(f"the graph has no {name!r} node")
        order = _ancestors_in_order(by_name[self.output_name], by_name)
        read_by: dict[str, list[GraphNode]] = {}
        for node in order:
            for name in _inputs(node):
                read_by.setdefault(name, []).append(node)
        constants = {n.name: n.attrs["value"] for n in order if n.op == "Const"}
        aliases: dict[str, str] = {}  # an op folded into another: the same value
        for node in order:
            if node.name in aliases or node.op in ("Const", "Placeholder"):
                continue
            raw_inputs = _inputs(node)
            inputs = [aliases.get(i, i) for i in raw_inputs]
            folded = self._fold(node, raw_inputs, inputs, constants, read_by)
            if folded is not None:
                aliases[node.name] = folded
                continue
            clip = _relu_clip(node, read_by, constants)
            if clip is not None:
                ceiling, fused = clip
                for name in fused:
                    aliases[name] = node.name
                self.program.append(
                    (node.name, lambda v, c=ceiling: torch.clamp(v[0], 0.0, c), inputs)
                )
                continue
            operation, data_inputs = self._operation(node, inputs, constants)
            self.program.append((node.name, operation, data_inputs))

    def _fold(
        self,
        node: GraphNode,
        raw_inputs: list[str],
        inputs: list[str],
        constants: dict[str, np.ndarray],
        read_by: dict[str, list[GraphNode]],
    ) -> str | None:
        """The convolution that ``node`` folds into (a bias, or a per-channel add or multiply
        of a value only it reads), or None."""
        if node.op not in ("BiasAdd", "Add", "AddV2", "Mul") or len(inputs) != 2:
            return None
        sides = [k for k in (0, 1) if inputs[k] in self._conv_index]
        if len(sides) != 1 or inputs[1 - sides[0]] not in constants:
            return None
        conv_name, read = inputs[sides[0]], raw_inputs[sides[0]]
        conv = self.convs[self._conv_index[conv_name]]
        value = np.asarray(constants[inputs[1 - sides[0]]])
        if len(read_by.get(read, [])) != 1 or value.ndim > 1:
            return None
        if value.size not in (1, conv.conv.out_channels):
            return None
        if node.op == "Mul":
            conv.scale_output(value)
        else:
            conv.shift_output(value)
        return conv_name

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

        if op in ("Conv2D", "DepthwiseConv2dNative"):
            strides = attrs.get("strides", [1, 1, 1, 1])
            dilations = attrs.get("dilations", [1, 1, 1, 1])
            if (
                attrs.get("data_format", b"NHWC") != b"NHWC"
                or strides[1] != strides[2]
                or any(d != 1 for d in dilations)
            ):
                raise ValueError(f"{node.name}: unsupported convolution layout, stride or dilation")
            depthwise = op == "DepthwiseConv2dNative"
            conv = TfConv(const(1), strides[1], attrs["padding"] == b"SAME", depthwise)
            self._conv_index[node.name] = len(self.convs)
            self.convs.append(conv)
            return (lambda v, c=conv: c(v[0])), inputs[:1]
        if op == "BiasAdd":
            bias = self._keep(inputs[1], const(1))
            return (lambda v: v[0] + _channels(v[1], v[0])), [inputs[0], bias]
        if op == "Relu":
            return (lambda v: F.relu(v[0])), inputs
        if op == "Relu6":
            return (lambda v: F.relu6(v[0])), inputs
        if op in ("MaxPool", "AvgPool"):
            if attrs["padding"] != b"VALID":
                raise ValueError(f"{node.name}: only VALID pooling is supported")
            size, stride = attrs["ksize"][1], attrs["strides"][1]
            pool = F.max_pool2d if op == "MaxPool" else F.avg_pool2d
            return (lambda v, p=pool, k=size, s=stride: p(v[0], k, s)), inputs
        if op == "ConcatV2":
            axis = int(const(-1))
            return (lambda v, a=axis: torch.cat(v, _axis(a, v[0]))), inputs[:-1]
        if op in _BINARY:
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
        if op in ("Sum", "Mean"):
            axes = [int(a) for a in np.atleast_1d(const(1))]
            keep = bool(attrs.get("keep_dims", False))
            reduce = torch.sum if op == "Sum" else torch.mean
            return (
                lambda v, a=axes, k=keep, r=reduce: r(v[0], [_axis(x, v[0]) for x in a], keepdim=k)
            ), inputs[:1]
        raise ValueError(f"{node.name}: unsupported TensorFlow op {op}")

    def _binary(
        self, op: str, inputs: list[str], constants: dict[str, np.ndarray]
    ) -> tuple[Operation, list[str]]:
        """An elementwise op of two inputs; a constant side (a scalar, or one value per
        channel) is a buffer shaped to broadcast over NCHW maps as it did over NHWC ones."""
        for name in inputs:
            if name in constants:
                if np.ndim(constants[name]) > 1:
                    raise ValueError(f"{op}: constants of more than one axis are not supported")
                self._keep(name, constants[name])
        function = _BINARY[op]
        return (lambda v, f=function: f(_channels(v[0], v[1]), _channels(v[1], v[0]))), inputs


_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Mul": torch.mul,
    "Add": torch.add,
    "AddV2": torch.add,
    "Sub": torch.sub,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
}


def _relu_clip(
    node: GraphNode, read_by: dict[str, list[GraphNode]], constants: dict[str, np.ndarray]
) -> tuple[float, list[str]] | None:
    """Keras' ReLU6 as a frozen graph writes it, ``Maximum(Minimum(Relu(x), 6), 0)``, seen from
    its Relu: the ceiling and the two nodes one clamp replaces (three passes over a feature map
    and their backward passes become one), or None."""
    if node.op != "Relu":
        return None
    chain, current = [], node
    for op in ("Minimum", "Maximum"):
        following = read_by.get(current.name, [])
        if len(following) != 1 or following[0].op != op:
            return None
        current = following[0]
        others = [i for i in _inputs(current) if i in constants]
        if len(others) != 1 or np.ndim(constants[others[0]]) != 0:
            return None
        chain.append((current.name, float(constants[others[0]])))
    (minimum, ceiling), (maximum, floor) = chain
    if ceiling < 0.0 or floor > 0.0:
        return None
    return ceiling, [minimum, maximum]


def _inputs(node: GraphNode) -> list[str]:
    """Data inputs by node name (control dependencies, ``^name``, dropped)."""
    return [i.split(":")[0] for i in node.inputs if not i.startswith("^")]


def _ancestors_in_order(output: GraphNode, by_name: dict[str, GraphNode]) -> list[GraphNode]:
    """The nodes ``output`` depends on (itself included), each after its inputs (a frozen
    graph's file order need not be one)."""
    done: set[str] = set()
    order: list[GraphNode] = []
    stack = [(output, False)]
    while stack:
        node, expanded = stack.pop()
        if node.name in done:
            continue
        if expanded:
            done.add(node.name)
            order.append(node)
            continue
        stack.append((node, True))
        for name in _inputs(node):
            if name not in by_name:
                raise ValueError(f"graph node {node.name} reads a missing node {name}")
            if name not in done:
                stack.append((by_name[name], False))
    return order


def _axis(axis: int, tensor: torch.Tensor) -> int:
    """A TensorFlow (NHWC) axis of ``tensor`` as its PyTorch axis."""
    return _NCHW_AXIS[axis] if tensor.ndim == 4 else axis


def _reshape(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """The reshapes of a graph's head, between pooled NCHW maps and flat vectors."""
    if x.ndim == 4 and len(shape) == 2:
        if x.shape[2:] != (1, 1):
            raise ValueError("flattening a feature map larger than 1x1 is not supported")
        return x.reshape(x.shape[0], -1)
    if x.ndim == 2 and len(shape) == 4 and shape[1:3] == [1, 1]:
        return x.reshape(x.shape[0], -1, 1, 1)
    if x.ndim == 2 and len(shape) == 2:
        return x.reshape(x.shape[0], -1)
    raise ValueError(f"unsupported reshape of {tuple(x.shape)} to {shape}")


def _channels(value: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``value`` shaped to broadcast against ``other`` as it did in NHWC: a vector of one value
    per channel (TensorFlow's last axis) lies along PyTorch's channel axis of a 4-D map."""
    if value.ndim == 1 and other.ndim == 4 and value.numel() > 1:
        return value.view(1, -1, 1, 1)
    return value


def _per_channel(x: torch.Tensor, factor: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return x * _channels(factor, x) + _channels(shift, x)
