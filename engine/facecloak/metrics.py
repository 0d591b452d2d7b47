"""Measurements shared by reports, benchmarks and tests: face-region SSIM, face pairing."""

from __future__ import annotations

from collections.abc import Sequence

import kornia.metrics
import numpy as np

from facecloak.detect import Face
from facecloak.pixels import to_unit


def face_region_ssim(original: np.ndarray, cloaked: np.ndarray, face: Face) -> float:
    """SSIM (11-px Gaussian window) of the face's detection box, original against cloaked."""
    x, y, w, h = face.box
    top, left = max(0, int(y)), max(0, int(x))
    bottom = min(original.shape[0], int(np.ceil(y + h)))
    right = min(original.shape[1], int(np.ceil(x + w)))
    a = to_unit(original[top:bottom, left:right])
    b = to_unit(cloaked[top:bottom, left:right])
    return float(kornia.metrics.ssim(a, b, 11, padding="same").mean())


def _iou(a: Face, b: Face) -> float:
    ax, ay, aw, ah = a.box
    bx, by, bw, bh = b.box
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def match_faces(
    originals: Sequence[Face], found: Sequence[Face], min_iou: float = 0.4
) -> list[Face | None]:
    """For each original face, the re-detected face that overlaps it best (or None)."""
    result: list[Face | None] = []
    for face in originals:
        best = max(found, key=lambda other: _iou(face, other), default=None)
        result.append(best if best is not None and _iou(face, best) >= min_iou else None)
    return result
