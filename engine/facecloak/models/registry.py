"""The recogniser registry: every face-recognition model the engine can cloak against.

A recogniser is described by one :class:`RecogniserSpec`, declared in one module of
``facecloak.models``. Every module of that package is imported on first use, so adding a model
(for example an ArcFace pack from a user-supplied folder) is one new file that calls
:func:`register`; nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

Metric = Literal["cosine", "euclidean"]


@dataclass(frozen=True)
class RecogniserSpec:
    """Everything the engine needs to know about one recogniser.

    ``load`` returns a module that takes a batch of aligned face chips, ``B x 3 x S x S`` RGB
    floats in ``[0, 1]`` (``S = input_size``), and returns ``B x D`` embeddings; the model's own
    preprocessing (mean, scale, channel order) lives inside that module so the cloak optimiser
    never needs to know it. ``template`` holds the five landmarks (image-left eye, image-right
    eye, nose tip, image-left mouth corner, image-right mouth corner) in chip pixel coordinates.
    """

    name: str
    input_size: int
    template: tuple[tuple[float, float], ...]
    metric: Metric
    match_threshold: float
    load: Callable[[], nn.Module]
    # Whether the model's files are there (an optional package may be missing), checked
    # without loading it, so a default list can leave out what a machine lacks.
    installed: Callable[[], bool]
    install_hint: str  # the command that installs the model's files, for "not installed"
    description: str = ""

    def template_array(self) -> np.ndarray:
        """The landmark template as a 5 x 2 float32 array."""
        return np.asarray(self.template, dtype=np.float32)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance between embeddings row by row; smaller means more alike."""
        if self.metric == "cosine":
            return 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1)
        return torch.linalg.vector_norm(a - b, dim=-1)

    def published_similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The figure the model's authors threshold: cosine similarity, or Euclidean distance."""
        distance = self.distance(a, b)
        return 1.0 - distance if self.metric == "cosine" else distance

    def match_score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """How far past the threshold a pair is, in units of it: > 0 means "same person".

        One scale for every model, so an ensemble's losses and margins can be summed.
        """
        distance = self.distance(a, b)
        if self.metric == "cosine":
            return ((1.0 - distance) - self.match_threshold) / (1.0 - self.match_threshold)
        return (self.match_threshold - distance) / self.match_threshold

    def same_person(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Whether this model, at its published threshold, calls the two faces one person."""
        return self.match_score(a, b) >= 0


_REGISTRY: dict[str, RecogniserSpec] = {}
_discovered = False


def register(spec: RecogniserSpec) -> RecogniserSpec:
    """Add a recogniser; a second registration under the same name is a programming error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"recogniser {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every module of ``facecloak.models`` once, so each can register itself."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("facecloak.models")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "registry":
            importlib.import_module(f"facecloak.models.{info.name}")


def get(name: str) -> RecogniserSpec:
    """The spec registered under ``name``; a clear error names the ones that exist."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown recogniser {name!r} (known: {known})") from None


def split_installed(candidates: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``candidates`` split into those whose files are installed and those missing."""
    present = tuple(name for name in candidates if get(name).installed())
    return present, tuple(name for name in candidates if name not in present)


def names() -> list[str]:
    """Names of every registered recogniser, sorted."""
    _discover()
    return sorted(_REGISTRY)
