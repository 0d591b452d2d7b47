"""Expectation over transformations: what a tracker may do to a photo before it embeds a face.

A cloak optimised on one fixed crop collapses once a tracker re-detects the face (landmarks move
by a few pixels) or resamples the photo; every optimisation step therefore embeds the face
through freshly drawn transformations: landmark jitter, small rotation, scale and shift,
antialiased or plain downscaling, and JPEG re-compression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia.enhance
import kornia.geometry.transform as KT
import torch

from facecloak.align import similarity_transform, warp_faces


@dataclass(frozen=True)
class Jitter:
    """Ranges of the random transformations, in units a tracker would recognise."""

    landmark_sigma: float = 0.02  # per-landmark noise, as a share of the eye-to-mouth distance
    max_rotation_deg: float = 4.0
    max_log_scale: float = 0.05
    max_shift: float = 0.03  # share of the chip size
    downscale_probability: float = 0.5  # resample the face region before warping
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
    full = torch.cat([matrices, torch.tensor([[[0.0, 0.0, 1.0]]]).expand(count, 1, 3)], dim=1)
    return (extra @ full)[:, :2]


def sample_chips(
    region: torch.Tensor,
    matrices: torch.Tensor,
    size: int,
    jitter: Jitter,
    generator: torch.Generator,
) -> torch.Tensor:
    """Chips of ``region`` (``1 x 3 x h x w``) under ``matrices``, some through a downscale.

    A tracker may align straight from the full-resolution photo (a sparse bilinear sampling) or
    from a downscaled copy (antialiased); both happen here, so the cloak cannot hide in pixels
    that only one of them reads.
    """
    pixels_per_chip_px = 1.0 / torch.linalg.det(matrices[:, :, :2]).abs().sqrt()
    chips = []
    for index in range(matrices.shape[0]):
        ratio = float(pixels_per_chip_px[index])
        source, matrix = region, matrices[index : index + 1]
        if (
            ratio > 1.25
            and float(torch.rand((), generator=generator)) < jitter.downscale_probability
        ):
            # Downscale so the face lands between 1x and 1.25x the chip's resolution.
            factor = (1.0 + 0.25 * float(torch.rand((), generator=generator))) / ratio
            height = max(8, round(region.shape[-2] * factor))
            width = max(8, round(region.shape[-1] * factor))
            antialias = bool(torch.rand((), generator=generator) < 0.7)
            source = KT.resize(
                region, (height, width), interpolation="bilinear", antialias=antialias
            )
            sy, sx = height / region.shape[-2], width / region.shape[-1]
            # Map resized pixel centres back to the original: x_orig = (x_new + .5) / s - .5.
            back = torch.tensor(
                [[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5], [0.0, 0.0, 1.0]]
            )
            matrix = (torch.cat([matrix[0], torch.tensor([[0.0, 0.0, 1.0]])]) @ back)[None, :2]
        chips.append(warp_faces(source, matrix.to(region.device), size))
    return torch.cat(chips)


def jpeg_some(
    chips: torch.Tensor, probability: float, jitter: Jitter, generator: torch.Generator
) -> torch.Tensor:
    """Pass a random share of ``chips`` through kornia's differentiable JPEG codec."""
    if probability <= 0:
        return chips
    chosen = torch.rand(chips.shape[0], generator=generator) < probability
    if not bool(chosen.any()):
        return chips
    span = jitter.max_jpeg_quality - jitter.min_jpeg_quality
    quality = jitter.min_jpeg_quality + span * torch.rand(int(chosen.sum()), generator=generator)
    # The codec works on 16-pixel blocks: pad the chip up to a multiple of 16 and crop back.
    size = chips.shape[-1]
    padded_size = (size + 15) // 16 * 16
    subset = chips[chosen.to(chips.device)]
    if padded_size != size:
        pad = padded_size - size
        subset = torch.nn.functional.pad(subset, (0, pad, 0, pad), mode="replicate")
    coded = kornia.enhance.jpeg_codec_differentiable(
        subset.clamp(0, 1), quality.to(chips.device, chips.dtype)
    )[..., :size, :size]
    out = chips.clone()
    out[chosen.to(chips.device)] = coded
    return out
