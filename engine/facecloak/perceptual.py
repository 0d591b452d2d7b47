"""The perceptual budget: Fawkes' DSSIM, ``(1 - SSIM) / 2``, with kornia's SSIM.

Exact figures come from one SSIM map per region; during optimisation big regions are charged on
random tiles instead, so a step costs the same whatever the photo's resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import kornia.metrics
import torch

from facecloak.regions import Box

SSIM_WINDOW = 11  # Gaussian window, as in the SSIM paper and kornia's default use
SSIM_TILE = 192  # side of the random tile a step charges in a big region
EXACT_AREA = SSIM_TILE * SSIM_TILE * 2  # regions up to this many pixels are always exact

# Cloaked pixels, or a function giving the cloaked crop [top:bottom, left:right] on demand
# (so a big region's change need not be applied in full just to look at a few tiles).
Pixels = torch.Tensor | Callable[[int, int, int, int], torch.Tensor]


def _crop(pixels: Pixels, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    if callable(pixels):
        return pixels(top, bottom, left, right)
    return pixels[..., top:bottom, left:right]


def exact_dssims(cloaked: torch.Tensor, original: torch.Tensor, boxes: Sequence[Box]) -> list:
    """DSSIM over each box, from one SSIM map of the whole region."""
    ssim_map = kornia.metrics.ssim(cloaked, original, SSIM_WINDOW, padding="same")
    return [
        (1.0 - ssim_map[..., top:bottom, left:right].mean()) / 2.0
        for top, left, bottom, right in boxes
    ]


def _random_tile(box: Box, generator: torch.Generator) -> Box:
    top, left, bottom, right = box
    if bottom - top > SSIM_TILE:
        top += int(torch.randint(bottom - top - SSIM_TILE + 1, (), generator=generator))
        bottom = top + SSIM_TILE
    if right - left > SSIM_TILE:
        left += int(torch.randint(right - left - SSIM_TILE + 1, (), generator=generator))
        right = left + SSIM_TILE
    return top, left, bottom, right


def sampled_dssims(
    cloaked: Pixels,
    original: torch.Tensor,
    boxes: Sequence[Box],
    generator: torch.Generator,
) -> list:
    """DSSIM of each box estimated on one random tile of it (exact for small regions).

    A tile's mean is an unbiased estimate of the box's mean; the SSIM map is computed on the
    tile plus half a window, so border handling matches the full map.
    """
    height, width = original.shape[-2:]
    if height * width <= EXACT_AREA:
        return exact_dssims(_crop(cloaked, 0, height, 0, width), original, boxes)
    pad = SSIM_WINDOW // 2
    result = []
    for box in boxes:
        top, left, bottom, right = _random_tile(box, generator)
        t, lft = max(0, top - pad), max(0, left - pad)
        b, r = min(height, bottom + pad), min(width, right + pad)
        ssim_map = kornia.metrics.ssim(
            _crop(cloaked, t, b, lft, r), original[..., t:b, lft:r], SSIM_WINDOW, padding="same"
        )
        inner = ssim_map[..., top - t : bottom - t, left - lft : right - lft]
        result.append((1.0 - inner.mean()) / 2.0)
    return result


@torch.no_grad()
def budget_scale(
    cloaked: Pixels,
    original: torch.Tensor,
    boxes: Sequence[Box],
    target: float,
    generator: torch.Generator,
    tiles: int = 3,
) -> float:
    """Factor (<= 1) to scale a change by so its worst estimated DSSIM meets ``target``.

    DSSIM grows about as the square of a small change, hence the square root.
    """
    exact = original.shape[-1] * original.shape[-2] <= EXACT_AREA
    samples = [
        sampled_dssims(cloaked, original, boxes, generator) for _ in range(1 if exact else tiles)
    ]
    worst = max(sum(float(s[i]) for s in samples) / len(samples) for i in range(len(boxes)))
    return 1.0 if worst <= target else math.sqrt(target / worst)
