"""Expectation over transformations: what a tracker may do to a photo before it embeds a face.

A cloak optimised on one fixed crop collapses once a tracker re-detects the face (landmarks move
by a few pixels) or resamples the photo; every optimisation step therefore embeds the face
through freshly drawn transformations: landmark jitter, small rotation, scale and shift,
antialiased or plain downscaling, and JPEG re-compression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facecloak.align import homogeneous, similarity_transform, warp_faces
from facecloak.jpeg import jpeg_round_trip


@dataclass(frozen=True)
class Jitter:
    """Ranges of the random transformations, in units a tracker would recognise."""

    landmark_sigma: float = 0.02  # per-landmark noise, as a share of the eye-to-mouth distance
    max_rotation_deg: float = 4.0
    max_log_scale: float = 0.05
    max_shift: float = 0.03  # share of the chip size
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


@dataclass
class PhotoVersion:
    """One copy of a face region as a tracker may have received the photo.

    ``pixels`` is the region, perhaps downscaled and JPEG-coded; ``back`` (3 x 3) maps its pixel
    coordinates back to the region's, so an alignment made for the region reads the same face
    from it, whichever of the region's faces it is for.
    """

    pixels: torch.Tensor
    back: torch.Tensor
    chip_quality: float | None = None  # too big to encode whole: each chip is encoded instead

    def chips(self, matrices: torch.Tensor, size: int) -> torch.Tensor:
        """Aligned ``size`` chips of this version for region alignments ``matrices`` (B x 2 x 3)."""
        to_version = (homogeneous(matrices) @ self.back)[:, :2]
        chips = warp_faces(self.pixels, to_version.to(self.pixels.device), size)
        return chips if self.chip_quality is None else jpeg_round_trip(chips, self.chip_quality)


def draw_versions(
    region: torch.Tensor,
    count: int,
    chip_ratio: float,
    jitter: Jitter,
    generator: torch.Generator,
    jpeg_probability: float = 0.0,
) -> list[PhotoVersion]:
    """``count`` random versions of ``region`` (``1 x 3 x h x w``): as is, downscaled, JPEG-coded.

    ``chip_ratio`` is how many region pixels one chip pixel spans (the smallest over the
    region's faces and the recognisers). A tracker may align straight from the full-resolution
    photo (a sparse bilinear sampling) or from a downscaled copy (antialiased); both happen here,
    so the cloak cannot hide in pixels that only one of them reads.
    """
    versions = []
    for _ in range(count):
        factor = 0
        draw = float(torch.rand((), generator=generator))
        if chip_ratio >= 2.0 and draw < jitter.downscale_probability:
            # Downscale by an integer factor so the face lands at 1x-1.5x the chip's
            # resolution: one cheap pass, whatever the photo's resolution.
            spread = 1.0 + 0.5 * float(torch.rand((), generator=generator))
            factor = max(2, int(chip_ratio / spread))
        elif chip_ratio < 2.0 and draw < jitter.shrink_probability:
            factor = 2  # near the chip's resolution: a half-size copy of the photo
        source, back = _downscaled(region, factor, generator) if factor else (region, torch.eye(3))
        version = PhotoVersion(source, back)
        if float(torch.rand((), generator=generator)) < jpeg_probability:
            quality = _quality(jitter, generator)
            if source.shape[-1] * source.shape[-2] <= JPEG_SOURCE_LIMIT:
                # JPEG happens to the photo, on its own 8x8 grid, before any tracker aligns it.
                version.pixels = jpeg_round_trip(source, quality)
            else:  # too big to encode every step: encode the chips instead
                version.chip_quality = quality
        versions.append(version)
    return versions


def chip_ratio(matrices: torch.Tensor) -> float:
    """Region pixels per chip pixel of the alignments ``matrices`` (B x 2 x 3): the smallest."""
    return float((1.0 / torch.linalg.det(matrices[:, :, :2]).abs().sqrt()).min())


def _downscaled(
    region: torch.Tensor, factor: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``region`` shrunk by ``factor`` (box filter, or every k-th pixel at a random phase) and
    the matrix from the shrunk copy's pixel coordinates back to the region's."""
    if bool(torch.rand((), generator=generator) < 0.6):
        source = torch.nn.functional.avg_pool2d(region, factor, stride=factor)
        phase = (factor - 1) / 2.0
    else:
        offset = int(torch.randint(factor, (), generator=generator))
        source = region[..., offset::factor, offset::factor]
        phase = float(offset)
    # Downscaled pixel x sits at factor * x + phase in the region.
    back = torch.tensor([[factor, 0.0, phase], [0.0, factor, phase], [0.0, 0.0, 1.0]])
    return source, back


JPEG_SOURCE_LIMIT = 640 * 640  # largest source (pixels) that is JPEG-coded whole per step


def _quality(jitter: Jitter, generator: torch.Generator) -> float:
    span = jitter.max_jpeg_quality - jitter.min_jpeg_quality
    return jitter.min_jpeg_quality + span * float(torch.rand((), generator=generator))
