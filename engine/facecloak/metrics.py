"""Measurements shared by reports, benchmarks and tests: face-region SSIM, face pairing."""

from __future__ import annotations

from collections.abc import Sequence

import kornia.metrics
import numpy as np

from facecloak.detect import Face
from facecloak.perceptual import SSIM_WINDOW
from facecloak.pixels import to_unit


def face_region_ssim(original: np.ndarray, cloaked: np.ndarray, face: Face) -> float:
    """SSIM (kornia's, 11-px Gaussian window) of the face's detection box, original against
    cloaked: the mean of the photo's SSIM map over the box.

    Each window reads the pixels around the box as they are in the photo (the map is computed
    on the box plus the window's reach), as the engine's budget does; a crop of the box alone
    would pad its border instead, which on a 40-px face moves the figure by a few 1e-4.
    """
    x, y, w, h = face.box
    height, width = original.shape[:2]
    top, left = max(0, int(y)), max(0, int(x))
    bottom, right = min(height, int(np.ceil(y + h))), min(width, int(np.ceil(x + w)))
    reach = SSIM_WINDOW // 2
    t, lft = max(0, top - reach), max(0, left - reach)
    b, r = min(height, bottom + reach), min(width, right + reach)
    a = to_unit(original[t:b, lft:r])
    c = to_unit(cloaked[t:b, lft:r])
    ssim_map = kornia.metrics.ssim(a, c, SSIM_WINDOW, padding="same")
    return float(ssim_map[..., top - t : bottom - t, left - lft : right - lft].mean())


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
