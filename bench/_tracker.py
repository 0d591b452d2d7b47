"""The tracker's side of the protection benchmarks on whole photos: the copies of a cloaked
photo a tracker may hold, and what its recognisers make of each face there.

A tracker never sees the optimiser's crops: it re-detects every face on its own copy and
re-aligns it, so every figure here starts from a fresh detection.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from facecloak.budget import CloakBudget, budget_for
from facecloak.cloak import Cloaker, Embeddings
from facecloak.detect import Face, FaceDetector
from facecloak.engine import Engine
from facecloak.metrics import match_faces
from PIL import Image
from protect_quick import EVALUATORS, jpeg

WEB_SIDE = 1080  # long side a social network re-encodes uploads to
VIEWS = ("saved", "jpeg75", "web")


def web_copy(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo shrunk to ``WEB_SIDE`` on its long side (never enlarged) and JPEG-75 coded,
    with the scale applied."""
    height, width = pixels.shape[:2]
    scale = min(1.0, WEB_SIDE / max(height, width))
    size = (round(width * scale), round(height * scale))
    shrunk = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
    return jpeg(shrunk, 75), scale


def scaled(face: Face, scale: float) -> Face:
    """``face`` in the coordinates of a copy resized by ``scale``."""
    return Face(tuple(v * scale for v in face.box), face.landmarks * scale, face.score)


def tracker_copies(cloaked: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """Each of ``VIEWS``: the copy's pixels and its scale against the cloaked photo."""
    return {"saved": (cloaked, 1.0), "jpeg75": (jpeg(cloaked, 75), 1.0), "web": web_copy(cloaked)}


def rescore(
    judge: Cloaker,
    detector: FaceDetector,
    faces: Sequence[Face],
    references: Embeddings,
    copy: np.ndarray,
) -> list[dict[str, tuple[float | None, bool]]]:
    """For each of ``faces`` (in ``copy``'s coordinates), each recogniser's published
    similarity to the clean face's embedding in ``references`` and whether it still matches.

    A face the tracker cannot find again scores ``(None, False)``: it is protected.
    """
    found = match_faces(faces, detector.detect(copy).faces)
    present = [(position, face) for position, face in enumerate(found) if face is not None]
    embedded = judge.embed(copy, [face.landmarks for _, face in present]) if present else {}
    scores: list[dict[str, tuple[float | None, bool]]] = [
        {r.spec.name: (None, False) for r in judge.recognisers} for _ in faces
    ]
    for row, (position, _) in enumerate(present):
        for recogniser in judge.recognisers:
            spec = recogniser.spec
            mine = embedded[spec.name][row : row + 1]
            theirs = references[spec.name][position : position + 1]
            scores[position][spec.name] = (
                float(spec.published_similarity(mine, theirs)[0]),
                bool(spec.same_person(mine, theirs)[0]),
            )
    return scores


@dataclass
class TrackerRun:
    """What a whole-photo protection benchmark runs with: the engine under test, the tracker's
    recognisers and detector, the mode, and the command line."""

    engine: Engine
    judge: Cloaker
    detector: FaceDetector
    mode: CloakBudget
    seed: int
    json: Path | None


def tracker_run(description: str) -> TrackerRun:
    """Parse a whole-photo benchmark's command line (mode, seed, device, budget overrides,
    JSON output) and load what it runs with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mode", default="mid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where the cloak runs: cpu or cuda")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a budget setting, e.g. --set steps=30",
    )  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    overrides = {k: float(v) if "." in v else int(v) for k, v in (o.split("=") for o in args.set)}
    mode = budget_for(args.mode).with_overrides(**overrides)
    torch.manual_seed(args.seed)
    engine, judge = Engine(device=args.device), Cloaker(EVALUATORS)
    return TrackerRun(engine, judge, FaceDetector(), mode, args.seed, args.json)
