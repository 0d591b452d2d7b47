"""Similarity alignment of faces to a recogniser's landmark template, done with kornia.

The crop is sampled straight from the full-resolution image tensor with ``warp_affine``, so the
gradient of a recogniser's loss lands on full-resolution pixels: no low-resolution delta is
ever resized onto the photo.
"""

from __future__ import annotations

import math

import kornia.geometry.transform as KT
import numpy as np
import torch

from facecloak.pixels import to_unit


def similarity_transform(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, shift) mapping ``source`` to ``target``.

    ``source``: ``B x N x 2`` points, ``target``: ``N x 2`` or ``B x N x 2``. Returns ``B x 2 x 3``
    matrices in pixel-centre coordinates (OpenCV's convention, which kornia's ``warp_affine``
    with ``align_corners=True`` shares). Umeyama's closed form, reflection excluded.
    """
    source = source.to(torch.float64)
    target = target.to(torch.float64).expand_as(source)
    src_mean = source.mean(dim=1, keepdim=True)
    dst_mean = target.mean(dim=1, keepdim=True)
    src = source - src_mean
    dst = target - dst_mean
    # For a 2-D similarity the optimum has a closed form in the complex plane:
    # z_dst ~ a * z_src with a = sum(conj(z_src) z_dst) / sum(|z_src|^2).
    denominator = (src**2).sum(dim=(1, 2))
    a = ((src[..., 0] * dst[..., 0] + src[..., 1] * dst[..., 1]).sum(dim=1)) / denominator
    b = ((src[..., 0] * dst[..., 1] - src[..., 1] * dst[..., 0]).sum(dim=1)) / denominator
    rotation = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], dim=-2)
    shift = dst_mean.transpose(1, 2) - rotation @ src_mean.transpose(1, 2)
    return torch.cat([rotation, shift], dim=-1).to(torch.float32)


def warp_faces(image: torch.Tensor, matrices: torch.Tensor, size: int) -> torch.Tensor:
    """Sample ``size x size`` aligned chips from ``image`` (``1 x C x H x W`` or ``B x C x H x W``).

    Bilinear, as OpenCV's ``warpAffine`` in ``alignCrop``; outside pixels read as zero.
    """
    if image.shape[0] != matrices.shape[0]:
        image = image.expand(matrices.shape[0], -1, -1, -1)
    return KT.warp_affine(
        image,
        matrices.to(image.dtype),
        dsize=(size, size),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )


def homogeneous(matrices: torch.Tensor) -> torch.Tensor:
    """``B x 2 x 3`` affine matrices as ``B x 3 x 3``, so they compose by product and invert."""
    bottom = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=matrices.dtype).expand(len(matrices), 1, 3)
    return torch.cat([matrices, bottom], dim=1)


def source_bounds(matrix: torch.Tensor, size: int) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) in the image of the ``size`` chip that ``matrix`` (2 x 3,
    image to chip) samples: the chip's corners mapped back."""
    full = homogeneous(matrix[None].to(torch.float64))[0]
    corners = torch.tensor(
        [[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]],
        dtype=torch.float64,
    )
    mapped = (torch.linalg.inv(full) @ corners.T).T
    return (
        float(mapped[:, 0].min()), float(mapped[:, 1].min()),
        float(mapped[:, 0].max()), float(mapped[:, 1].max()),
    )  # fmt: skip


def warp_faces_from_pixels(
    pixels: np.ndarray, matrices: torch.Tensor, size: int, device: torch.device
) -> torch.Tensor:
    """:func:`warp_faces` on stored ``H x W x C`` pixels, each chip read from a crop around it.

    The same chips as converting the whole photo first, without a float copy of all of it
    (290 MB and a noticeable pause for a 24 MP photo, for a few faces).
    """
    height, width = pixels.shape[:2]
    chips = []
    for matrix in matrices:
        x0, y0, x1, y1 = source_bounds(matrix, size)
        # Bilinear sampling reads one pixel either side of each position.
        left = min(max(0, math.floor(x0) - 1), width - 1)
        top = min(max(0, math.floor(y0) - 1), height - 1)
        right = max(left + 1, min(width, math.ceil(x1) + 2))
        bottom = max(top + 1, min(height, math.ceil(y1) + 2))
        crop = to_unit(pixels[top:bottom, left:right]).to(device)
        shifted = matrix.clone()
        shifted[:, 2] += matrix[:, :2] @ torch.tensor([float(left), float(top)])
        chips.append(warp_faces(crop, shifted[None].to(device), size))
    return torch.cat(chips)


def landmarks_tensor(landmarks: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack per-face ``5 x 2`` landmark arrays into a ``B x 5 x 2`` float tensor."""
    return torch.as_tensor(np.asarray(landmarks, dtype=np.float32).reshape(-1, 5, 2))
