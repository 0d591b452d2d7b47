"""Where a cloak may change pixels: one region per face, merged where faces are close.

Each region covers every recogniser's aligned chip of its faces plus room for jitter, and holds
the optimisation state for that rectangle of the photo: the original pixels, the full-resolution
change, the taper that fades the change out at the border, and each face's landmarks and box
in region coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from facecloak.align import similarity_transform, source_bounds
from facecloak.eot import face_scale
from facecloak.jpeg import MCU

if TYPE_CHECKING:
    from facecloak.perceptual import SsimReference

REGION_MARGIN = 0.12  # extra room around the chips' footprint for jitter, per side
TAPER = 0.12  # share of each region side over which the change fades to zero at its border

Box = tuple[int, int, int, int]  # top, left, bottom, right
# A face's zone in a shared region (see face_zone): full strength over its box plus the SSIM
# window's reach (perceptual.RADIUS, which imports this module; a test holds them equal),
# fading out over ZONE_FADE more pixels.
ZONE_REACH, ZONE_FADE = 5, 10


@dataclass
class Region:
    """A rectangle of the photo with one change tensor, and the faces inside it."""

    top: int
    left: int
    bottom: int
    right: int
    faces: list[int]
    original: torch.Tensor | None = None  # 1 x 3 x h x w in [0, 1]
    reference: SsimReference | None = None  # the original's SSIM moments, blurred once
    delta: torch.Tensor | None = None  # the change being optimised, same shape
    window: torch.Tensor | None = None  # 1 x 1 x h x w taper
    points: dict[int, np.ndarray] = field(default_factory=dict)  # face -> 5 x 2, local
    boxes: dict[int, Box] = field(default_factory=dict)  # face -> SSIM box, local
    active: bool = True  # still being optimised
    resting: set[int] = field(default_factory=set)  # faces past their margin at the last check
    moving: torch.Tensor | None = None  # 1 x 1 x h x w: where the change moves while some rest
    chip_ratio: float = 1.0  # region pixels per chip pixel, smallest over faces and recognisers
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None  # per-pixel limits of the change
    # face -> (top, left, bottom, right, mask): where cutting that face's share of the change
    # acts, in a region of several faces (face_zone)
    zones: dict[int, tuple[int, int, int, int, torch.Tensor]] = field(default_factory=dict)
    coverage: float = 0.0  # share of the photo its regions cover together (photo_dssim)
    photo_faces: int = 1  # how many faces the whole photo has (photo_dssim binds on few)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    @property
    def offset(self) -> np.ndarray:
        return np.array([self.left, self.top], dtype=np.float32)

    def cloaked(self) -> torch.Tensor:
        """The region's pixels with the (tapered) change applied.

        No clamp is needed: the change is kept inside [-original, 1 - original], and the taper
        only shrinks it.
        """
        return self.original + self.delta * self.window

    def cloaked_crop(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        """:meth:`cloaked` for one crop only: what a tile's SSIM needs from a big region."""
        rows, cols = slice(top, bottom), slice(left, right)
        delta = self.delta[..., rows, cols] * self.window[..., rows, cols]
        return self.original[..., rows, cols] + delta

    def ssim_boxes(self) -> list[Box]:
        """Each face box, then the whole region: the areas whose SSIM is budgeted."""
        return [*(self.boxes[face] for face in self.faces), (0, 0, *self.shape)]

    def cut_faces(self, change: torch.Tensor, cuts: Sequence[float]) -> None:
        """Scale ``change`` (region-shaped) in place by each face's factor in ``cuts`` (in
        ``faces`` order) over that face's zone, so one face at its limit does not hold back the
        others of a shared region. Where zones overlap, the factors multiply."""
        for face, cut in zip(self.faces, cuts, strict=True):
            if cut < 1.0:
                top, left, bottom, right, mask = self.zones[face]
                change[..., top:bottom, left:right] *= 1.0 - (1.0 - cut) * mask

    def build_zones(self) -> None:
        """Each face's zone (:func:`face_zone`), on the window's device."""
        for face in self.faces:
            top, left, bottom, right, mask = face_zone(self.boxes[face], *self.shape)
            self.zones[face] = (top, left, bottom, right, mask.to(self.window.device))

    def rest(self, resting: set[int]) -> None:
        """Let ``resting`` faces rest: their zones get no gradient (not even the SSIM
        penalty's, which Adam would turn into full steps back towards the original; only its
        momentum carries the last steps on) wherever no still-weak face's zone reaches."""
        self.resting = resting
        if not resting or len(self.faces) == 1:
            self.moving = None
            return
        still = torch.zeros_like(self.window)
        weak = torch.zeros_like(self.window)
        for face in self.faces:
            top, left, bottom, right, mask = self.zones[face]
            target = still if face in resting else weak
            view = target[..., top:bottom, left:right]
            torch.maximum(view, mask, out=view)
        self.moving = torch.maximum(1.0 - still, weak)


def chip_footprint(
    landmarks: np.ndarray, templates: Sequence[tuple[torch.Tensor, int]]
) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of every (template, size) chip mapped back into the photo."""
    points = torch.tensor(landmarks, dtype=torch.float32)[None]
    bounds = [source_bounds(similarity_transform(points, t)[0], size) for t, size in templates]
    return (
        min(b[0] for b in bounds), min(b[1] for b in bounds),
        max(b[2] for b in bounds), max(b[3] for b in bounds),
    )  # fmt: skip


def _overlap(a: Region, b: Region) -> bool:
    return a.top < b.bottom and b.top < a.bottom and a.left < b.right and b.left < a.right


def _first_overlap(regions: list[Region]) -> tuple[int, int] | None:
    for i, a in enumerate(regions):
        for j in range(i + 1, len(regions)):
            if _overlap(a, regions[j]):
                return i, j
    return None


def _grid_floor(value: float) -> int:
    return math.floor(value / MCU) * MCU


def _grid_ceil(value: float) -> int:
    return math.ceil(value / MCU) * MCU


def group_faces(
    landmarks: Sequence[np.ndarray],
    templates: Sequence[tuple[torch.Tensor, int]],
    height: int,
    width: int,
) -> list[Region]:
    """One region per face, merged where they overlap so no pixel has two owners.

    Regions start on the photo's JPEG grid (16-px blocks from its top left corner), so that
    a JPEG round trip of a region during optimisation codes the same blocks as a tracker's
    re-encoding of the photo: a 40-px face spans only three of them.
    """
    regions = []
    for index, points in enumerate(landmarks):
        x0, y0, x1, y1 = chip_footprint(points, templates)
        pad_x, pad_y = (x1 - x0) * REGION_MARGIN, (y1 - y0) * REGION_MARGIN
        regions.append(
            Region(
                top=max(0, _grid_floor(y0 - pad_y)),
                left=max(0, _grid_floor(x0 - pad_x)),
                bottom=min(height, _grid_ceil(y1 + pad_y + 1)),
                right=min(width, _grid_ceil(x1 + pad_x + 1)),
                faces=[index],
            )
        )
    while pair := _first_overlap(regions):
        i, j = pair
        a, b = regions[i], regions.pop(j)
        regions[i] = Region(
            min(a.top, b.top), min(a.left, b.left),
            max(a.bottom, b.bottom), max(a.right, b.right), a.faces + b.faces,
        )  # fmt: skip
    return regions


def taper(height: int, width: int) -> torch.Tensor:
    """A window that is 1 inside and fades to 0 at the region's border (no visible seam)."""

    def ramp(length: int) -> torch.Tensor:
        edge = max(1, round(length * TAPER))
        position = torch.arange(length, dtype=torch.float32)
        distance = torch.minimum(position + 1, length - position) / edge
        return 0.5 - 0.5 * torch.cos(math.pi * distance.clamp(max=1.0))

    return (ramp(height)[:, None] * ramp(width)[None, :])[None, None]


def face_zone(box: Box, height: int, width: int) -> tuple[int, int, int, int, torch.Tensor]:
    """The pixels whose change can touch a face box's SSIM (the box plus the window's reach),
    at full strength, fading to nothing over ``ZONE_FADE`` more pixels so a cut leaves no edge
    in the change; clipped to the region."""
    reach = ZONE_REACH + ZONE_FADE
    top, left = max(0, box[0] - reach), max(0, box[1] - reach)
    bottom, right = min(height, box[2] + reach), min(width, box[3] + reach)

    def ramp(start: int, stop: int, first: int, last: int) -> torch.Tensor:
        position = torch.arange(start, stop, dtype=torch.float32)
        outside = torch.clamp(torch.maximum(first - position, position - (last - 1)), min=0)
        distance = (outside - ZONE_REACH).clamp(min=0) / ZONE_FADE
        return 0.5 + 0.5 * torch.cos(math.pi * distance.clamp(max=1.0))

    rows = ramp(top, bottom, box[0], box[2])
    cols = ramp(left, right, box[1], box[3])
    return top, left, bottom, right, (rows[:, None] * cols[None, :])[None, None]


def box_from_landmarks(points: np.ndarray, height: int, width: int) -> Box:
    """A face box around the landmarks, sized by the face, for callers without a detector box."""
    scale = float(face_scale(torch.tensor(points)[None])[0])
    centre = points.mean(axis=0)
    return (
        max(0, math.floor(centre[1] - 1.35 * scale)),
        max(0, math.floor(centre[0] - 1.1 * scale)),
        min(height, math.ceil(centre[1] + 1.1 * scale)),
        min(width, math.ceil(centre[0] + 1.1 * scale)),
    )


def clip_box(box: Sequence[float], region: Region) -> Box:
    """A detector's (x, y, w, h) box as a local (top, left, bottom, right) inside ``region``."""
    x, y, w, h = box
    top = min(max(0, math.floor(y) - region.top), region.shape[0] - 1)
    left = min(max(0, math.floor(x) - region.left), region.shape[1] - 1)
    bottom = max(top + 1, min(region.shape[0], math.ceil(y + h) - region.top))
    right = max(left + 1, min(region.shape[1], math.ceil(x + w) - region.left))
    return top, left, bottom, right
