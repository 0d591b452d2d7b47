"""Expectation over transformations: what a tracker may do to a photo before it embeds a face.

A cloak optimised on one fixed crop collapses once a tracker re-detects the face (landmarks move
by a few pixels) or resamples the photo; every optimisation step therefore embeds the face
through freshly drawn transformations: landmark jitter, small rotation, scale and shift,
antialiased or plain downscaling, and JPEG re-compression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from facecloak.align import homogeneous, similarity_transform, source_bounds, warp_faces
from facecloak.jpeg import MCU, jpeg_round_trip


@dataclass(frozen=True)
class Jitter:
    """Ranges of the random transformations, in units a tracker would recognise."""

    landmark_sigma: float = 0.02  # per-landmark noise, as a share of the eye-to-mouth distance
    max_rotation_deg: float = 4.0
    # Framing diversity: a tracker's recogniser may crop looser or tighter than the ensemble's
    # (FaceNet's chip is 1.25x ArcFace's, the HSE model's 1.75x). Zooms of +-16 % and shifts of
    # +-4.5 % instead of +-5 % and +-3 % raised the tracker's protection against those two
    # unseen families from 0.46 / 0.25 to 0.60 / 0.27 (FaceNet) and from 0.21 / 0.04 to
    # 0.35 / 0.19 (HSE) at the same SSIM; wider still (+-28 %, +-6 %) gained little more and
    # cost SFace's white-box protection after JPEG 75 and halving (docs/evaluation.md).
    max_log_scale: float = 0.15
    max_shift: float = 0.045  # share of the chip size
    downscale_probability: float = 0.5  # resample the face region before warping
    # Faces near the chip's own resolution meet thumbnails and half-size re-uploads: halve the
    # region (antialiased) before warping, so the cloak also lives in its coarse pixels.
    shrink_probability: float = 0.3
    min_jpeg_quality: float = 60.0
    max_jpeg_quality: float = 95.0


def face_scale(landmarks: torch.Tensor) -> torch.Tensor:
    """Eye-midpoint to mouth-midpoint distance of ``B x 5 x 2`` landmarks: a face size in px."""
    eyes = landmarks[:, 0:2].mean(dim=1)
    mouth = landmarks[:, 3:5].mean(dim=1)
    return torch.linalg.vector_norm(eyes - mouth, dim=-1)


def jittered_matrices(
    landmarks: torch.Tensor,
    template: torch.Tensor,
    size: int,
    count: int,
    jitter: Jitter,
    generator: torch.Generator,
) -> torch.Tensor:
    """``count`` alignment matrices for one face (``5 x 2`` landmarks), as a re-detector might.

    Each perturbs the landmarks, then composes a small random rotation, scale and shift around
    the chip centre with the similarity fitted to the perturbed points.
    """
    scale = float(face_scale(landmarks[None])[0])
    noise = torch.randn((count, 5, 2), generator=generator) * jitter.landmark_sigma * scale
    matrices = similarity_transform(landmarks[None] + noise, template)
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(jitter.max_rotation_deg)
    log_s = (torch.rand(count, generator=generator) * 2 - 1) * jitter.max_log_scale
    shift = (torch.rand((count, 2), generator=generator) * 2 - 1) * jitter.max_shift * size
    cos, sin = torch.cos(angle) * torch.exp(log_s), torch.sin(angle) * torch.exp(log_s)
    centre = torch.full((count, 2), (size - 1) / 2.0)
    extra = torch.zeros((count, 3, 3))
    extra[:, 0, 0], extra[:, 0, 1] = cos, -sin
    extra[:, 1, 0], extra[:, 1, 1] = sin, cos
    extra[:, :2, 2] = centre - (extra[:, :2, :2] @ centre[..., None])[..., 0] + shift
    extra[:, 2, 2] = 1.0
    full = homogeneous(matrices)
    return (extra @ full)[:, :2]


class RegionPixels(Protocol):
    """A region's pixels, read a crop at a time (:class:`facecloak.crops.CroppedRegion`)."""

    shape: tuple[int, int]

    def crop(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor: ...


@dataclass
class PhotoVersion:
    """One copy of a face region as a tracker may have received the photo: perhaps downscaled
    by ``factor`` (a box filter, or every ``factor``-th pixel from ``offset``), perhaps JPEG-coded
    at ``quality``.

    A region bigger than ``WHOLE_REGION_LIMIT`` is never made whole: each chip reads a window
    around its own footprint, aligned to the downscale factor and to JPEG's 16-pixel blocks so
    that every pixel the chip reads equals the whole version's, and the step's gradient lands
    in tensors the size of those windows (a 24-megapixel face's region is over a megapixel).
    """

    source: RegionPixels
    factor: int = 1
    pooled: bool = True
    offset: int = 0
    quality: float | None = None
    _whole: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def coded_whole(self) -> bool:
        """JPEG happens to the photo, on its own 8x8 grid, before any tracker aligns it; a
        version too big to encode every step has its chips encoded instead."""
        height, width = self.source.shape
        small = (height // self.factor) * (width // self.factor) <= JPEG_SOURCE_LIMIT
        return self.quality is not None and small

    def chips(self, matrices: torch.Tensor, size: int) -> torch.Tensor:
        """Aligned ``size`` chips of this version for region alignments ``matrices`` (B x 2 x 3)."""
        chips = []
        for matrix in matrices:
            pixels, back = self._window(matrix, size)
            to_version = (homogeneous(matrix[None]) @ back)[:, :2]
            chips.append(warp_faces(pixels, to_version.to(pixels.device), size))
        joined = torch.cat(chips)
        if self.quality is None or self.coded_whole:
            return joined
        return jpeg_round_trip(joined, self.quality)

    def _window(self, matrix: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The version's pixels around what ``matrix`` reads, and the matrix from their pixel
        coordinates back to the region's."""
        height, width = self.source.shape
        if height * width <= WHOLE_REGION_LIMIT:
            return self._whole_version()
        x0, y0, x1, y1 = source_bounds(matrix, size)
        # Room for bilinear reads of the shrunk copy and for JPEG's chroma upsampling, which
        # reads one coded sample past a window's edge.
        margin = 4 * self.factor + 2
        grid = MCU * self.factor if self.coded_whole else self.factor
        top = max(0, math.floor((y0 - margin) / grid) * grid)
        left = max(0, math.floor((x0 - margin) / grid) * grid)
        bottom = min(height, math.ceil((y1 + margin) / grid) * grid)
        right = min(width, math.ceil((x1 + margin) / grid) * grid)
        covers_all = (top, bottom, left, right) == (0, height, 0, width)
        outside = min(bottom - top, right - left) < grid  # a chip jittered off the region
        if covers_all or outside:
            return self._whole_version()
        return self._make(top, bottom, left, right)

    def _whole_version(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole region's version, made once and shared by the region's faces."""
        if self._whole is None:
            height, width = self.source.shape
            self._whole = self._make(0, height, 0, width)
        return self._whole

    def _make(
        self, top: int, bottom: int, left: int, right: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The version of the region's window, and the matrix back to region coordinates."""
        pixels = self.source.crop(top, bottom, left, right)
        phase = 0.0
        if self.factor > 1 and self.pooled:
            pixels = torch.nn.functional.avg_pool2d(pixels, self.factor, stride=self.factor)
            phase = (self.factor - 1) / 2.0
        elif self.factor > 1:
            pixels = pixels[..., self.offset :: self.factor, self.offset :: self.factor]
            phase = float(self.offset)
        if self.coded_whole:
            pixels = jpeg_round_trip(pixels, self.quality)
        # Version pixel x sits at left + factor * x + phase in the region.
        back = torch.tensor(
            [[self.factor, 0.0, left + phase], [0.0, self.factor, top + phase], [0.0, 0.0, 1.0]]
        )
        return pixels, back


def draw_versions(
    region: RegionPixels,
    count: int,
    chip_ratio: float,
    jitter: Jitter,
    generator: torch.Generator,
    jpeg_probability: float = 0.0,
) -> list[PhotoVersion]:
    """``count`` random versions of ``region``: as is, downscaled, JPEG-coded.

    ``chip_ratio`` is how many region pixels one chip pixel spans (the smallest over the
    region's faces and the recognisers). A tracker may align straight from the full-resolution
    photo (a sparse bilinear sampling) or from a downscaled copy (antialiased); both happen here,
    so the cloak cannot hide in pixels that only one of them reads.
    """
    versions = []
    for _ in range(count):
        version = PhotoVersion(region)
        draw = float(torch.rand((), generator=generator))
        if chip_ratio >= 2.0 and draw < jitter.downscale_probability:
            # Downscale by an integer factor so the face lands at 1x-1.5x the chip's
            # resolution: one cheap pass, whatever the photo's resolution.
            spread = 1.0 + 0.5 * float(torch.rand((), generator=generator))
            version.factor = max(2, int(chip_ratio / spread))
        elif chip_ratio < 2.0 and draw < jitter.shrink_probability:
            version.factor = 2  # near the chip's resolution: a half-size copy of the photo
        if version.factor > 1:
            # A box filter, or every k-th pixel at a random phase.
            version.pooled = bool(torch.rand((), generator=generator) < 0.6)
            if not version.pooled:
                version.offset = int(torch.randint(version.factor, (), generator=generator))
        if float(torch.rand((), generator=generator)) < jpeg_probability:
            version.quality = _quality(jitter, generator)
        versions.append(version)
    return versions


def chip_ratio(matrices: torch.Tensor) -> float:
    """Region pixels per chip pixel of the alignments ``matrices`` (B x 2 x 3): the smallest."""
    return float((1.0 / torch.linalg.det(matrices[:, :, :2]).abs().sqrt()).min())


JPEG_SOURCE_LIMIT = 640 * 640  # largest source (pixels) that is JPEG-coded whole per step
WHOLE_REGION_LIMIT = 640 * 640  # largest region (pixels) whose versions are made whole


def _quality(jitter: Jitter, generator: torch.Generator) -> float:
    span = jitter.max_jpeg_quality - jitter.min_jpeg_quality
    return jitter.min_jpeg_quality + span * float(torch.rand((), generator=generator))
