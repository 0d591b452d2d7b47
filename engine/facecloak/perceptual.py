"""The perceptual budget: Fawkes' DSSIM, ``(1 - SSIM) / 2``, as kornia's SSIM defines it.

The SSIM map is kornia's (``kornia.metrics.ssim``: 11-tap Gaussian window, sigma 1.5, reflect
padding), computed here in a form that suits an optimiser: the original's blurred moments are
computed once per region (:class:`SsimReference`), and each step blurs the cloaked pixels'
three moments in one grouped, channels-last convolution instead of kornia's five separate
filterings (3 to 10 times faster forward and backward on a CPU).
``tests/test_regions_perceptual.py`` holds the two maps equal. Exact figures come from one map
per region; during optimisation big regions are charged on random tiles instead, so a step
costs the same whatever the photo's resolution.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import kornia.filters
import torch
import torch.nn.functional as F

from facecloak.regions import Box

SSIM_WINDOW = 11  # Gaussian window, as in the SSIM paper and kornia's default use
SSIM_SIGMA = 1.5  # kornia's (and the paper's) window width
RADIUS = SSIM_WINDOW // 2
SSIM_TILE = 192  # side of the random tile a step charges in a big region
EXACT_AREA = SSIM_TILE * SSIM_TILE * 2  # regions up to this many pixels are always exact
C1, C2 = 0.01**2, 0.03**2  # SSIM's stabilisers for a data range of 1
EPS = 1e-12  # kornia's denominator guard

# Cloaked pixels, or a function giving the cloaked crop [top:bottom, left:right] on demand
# (so a big region's change need not be applied in full just to look at a few tiles).
Pixels = torch.Tensor | Callable[[int, int, int, int], torch.Tensor]


def _crop(pixels: Pixels, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    if callable(pixels):
        return pixels(top, bottom, left, right)
    return pixels[..., top:bottom, left:right]


@functools.cache
def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """kornia's SSIM window, built once per device and type (it is asked for on every blur)."""
    return kornia.filters.get_gaussian_kernel1d(
        SSIM_WINDOW, SSIM_SIGMA, device=device, dtype=dtype
    )[0]


def gaussian_blur(stack: torch.Tensor) -> torch.Tensor:
    """kornia's SSIM filtering (separable Gaussian, reflect padding) of every channel of
    ``stack`` at once: one padding and two grouped convolutions."""
    channels = stack.shape[1]
    kernel = _window(stack.device, stack.dtype)
    padded = F.pad(stack, (RADIUS, RADIUS, RADIUS, RADIUS), mode="reflect")
    if padded.device.type == "cpu":
        # oneDNN runs depthwise convolutions on channels-last tensors as they are; NCHW ones are
        # copied into blocks first: 3 to 10 times slower, forward and backward.
        padded = padded.contiguous(memory_format=torch.channels_last)
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


class SsimReference:
    """An original region and its blurred mean and mean square, computed once.

    The original never changes during a cloak, so only the cloaked side's moments (mean, mean
    square, and the product with the original) are blurred per step.
    """

    def __init__(self, original: torch.Tensor) -> None:
        self.original = original
        with torch.no_grad():
            moments = gaussian_blur(torch.cat([original, original * original], dim=1))
        self.mean, self.mean_square = moments.chunk(2, dim=1)

    @property
    def shape(self) -> tuple[int, int]:
        height, width = self.original.shape[-2:]
        return height, width


def ssim_map(cloaked: Pixels, reference: SsimReference, box: Box) -> torch.Tensor:
    """kornia's SSIM map of the region (cloaked against original), over ``box`` only.

    The cloaked pixels are read over the box plus the window's radius, so every value equals
    the one in the whole region's map (reflection happens only at the region's own border).
    """
    top, left, bottom, right = box
    height, width = reference.shape
    t, lft = max(0, top - RADIUS), max(0, left - RADIUS)
    b, r = min(height, bottom + RADIUS), min(width, right + RADIUS)
    x = _crop(cloaked, t, b, lft, r)
    y = reference.original[..., t:b, lft:r]
    inner = (..., slice(top - t, bottom - t), slice(left - lft, right - lft))
    mean_x, square_x, product = gaussian_blur(torch.cat([x, x * x, x * y], 1))[inner].chunk(3, 1)
    mean_y = reference.mean[..., top:bottom, left:right]
    square_y = reference.mean_square[..., top:bottom, left:right]
    mean_xy = mean_x * mean_y
    mean_x2, mean_y2 = mean_x * mean_x, mean_y * mean_y
    numerator = (2.0 * mean_xy + C1) * (2.0 * (product - mean_xy) + C2)
    variance_sum = (square_x - mean_x2) + (square_y - mean_y2)
    denominator = (mean_x2 + mean_y2 + C1) * (variance_sum + C2)
    return numerator / (denominator + EPS)


def exact_dssims(cloaked: torch.Tensor, reference: SsimReference, boxes: Sequence[Box]) -> list:
    """DSSIM over each box, from one SSIM map of the whole region."""
    height, width = reference.shape
    whole = ssim_map(cloaked, reference, (0, 0, height, width))
    return [
        (1.0 - whole[..., top:bottom, left:right].mean()) / 2.0
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


def _tiled(box: Box) -> bool:
    """Whether a box is bigger than one tile, so that a tile is only an estimate of it."""
    top, left, bottom, right = box
    return bottom - top > SSIM_TILE or right - left > SSIM_TILE


def sampled_dssims(
    cloaked: Pixels,
    reference: SsimReference,
    boxes: Sequence[Box],
    generator: torch.Generator,
) -> list:
    """DSSIM of each box estimated on one random tile of it (exact for small regions).

    A tile's mean is an unbiased estimate of the box's mean.
    """
    height, width = reference.shape
    if height * width <= EXACT_AREA:
        return exact_dssims(_crop(cloaked, 0, height, 0, width), reference, boxes)
    return [
        (1.0 - ssim_map(cloaked, reference, _random_tile(box, generator)).mean()) / 2.0
        for box in boxes
    ]


@torch.no_grad()
def box_scales(
    cloaked: Pixels,
    reference: SsimReference,
    boxes: Sequence[Box],
    targets: Sequence[float],
    generator: torch.Generator,
    tiles: int = 3,
) -> list[float]:
    """Factor (<= 1) for each box: what scaling the change by would bring that box's
    estimated DSSIM to its target.

    DSSIM grows about as the square of a small change, hence the square root.
    """
    height, width = reference.shape
    estimates = [float(d) for d in sampled_dssims(cloaked, reference, boxes, generator)]
    # A box no bigger than a tile is measured exactly by the first pass (a crowd's faces often
    # are): only the bigger ones draw more tiles, in the same order as they always did.
    sampled = [] if height * width <= EXACT_AREA else [i for i, b in enumerate(boxes) if _tiled(b)]
    for _ in range(tiles - 1 if sampled else 0):
        more = sampled_dssims(cloaked, reference, [boxes[i] for i in sampled], generator)
        for i, value in zip(sampled, more, strict=True):
            estimates[i] += float(value)
    for i in sampled:
        estimates[i] /= tiles
    pairs = zip(targets, estimates, strict=True)
    return [min(1.0, math.sqrt(target / max(estimate, 1e-12))) for target, estimate in pairs]
