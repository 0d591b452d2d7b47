"""A differentiable JPEG round trip that does what libjpeg does to a photo.

Trackers meet cloaked photos as JPEG files (re-encoded by every site that takes an upload), so
the optimiser passes sampled faces through this codec. It follows the baseline JPEG pipeline as
libjpeg (Pillow, browsers, phones) runs it with its defaults: JFIF YCbCr, 4:2:0 chroma by 2 x 2
averaging, the 8 x 8 DCT, the standard's quantisation tables scaled by the IJG quality formula,
and "fancy" (triangular) chroma upsampling on decode. Only the rounding of the quantised
coefficients is replaced by a smooth stand-in, so gradients flow.

The DCT is a stride-8 convolution with the 64 basis images and the inverse its transpose, which
keeps the whole round trip to a few large operations: 2-4x faster forward and backward than
``kornia.enhance.jpeg_codec_differentiable`` on a CPU, and closer to what libjpeg decodes
(``tests/test_jpeg.py``).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

BLOCK = 8
MCU = 16  # 4:2:0 coding works on 16 x 16 luma blocks: images are padded to multiples of it

# Annex K of the JPEG standard (ITU-T T.81): the example tables that libjpeg scales by quality.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)

# JFIF's RGB -> YCbCr (ITU-R BT.601, full range) and its inverse, in 0..255 units.
RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
YCBCR_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136, -0.714136),
    (1.0, 1.772, 0.0),
)


def quantisation_table(
    base: tuple[tuple[int, ...], ...], quality: float, device: torch.device | None = None
) -> torch.Tensor:
    """libjpeg's ``jpeg_quality_scaling`` of a base table: 8 x 8 divisors for ``quality``,
    computed on ``device`` (exact in float64 on any device: the same divisors)."""
    quality = min(max(quality, 1.0), 100.0)
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    base_table = _constant(base, device or torch.device("cpu"), torch.float64)
    table = torch.floor((base_table * scale + 50.0) / 100.0)
    return table.clamp(1, 255).to(torch.float32)


@functools.cache
def _constant(
    values: tuple[tuple[float, ...], ...], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """A constant table on ``device``, copied there once: a copy per use was a host-device
    synchronisation per sampled face on a GPU (1,300 of a 1-megapixel photo's 2,228)."""
    return torch.tensor(values, dtype=dtype, device=device)


@functools.cache
def _dct_basis(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The 64 orthonormal 8 x 8 DCT-II basis images as ``64 x 1 x 8 x 8`` convolution weights
    (JPEG's forward DCT, 1/4 C(u) C(v) sum f cos cos, is exactly this transform)."""
    positions = torch.arange(BLOCK, dtype=torch.float64)
    frequencies = torch.arange(BLOCK, dtype=torch.float64)[:, None]
    cosines = torch.cos((2 * positions + 1) * frequencies * math.pi / (2 * BLOCK))
    cosines[0] *= math.sqrt(1.0 / BLOCK)
    cosines[1:] *= math.sqrt(2.0 / BLOCK)
    basis = cosines[:, None, :, None] * cosines[None, :, None, :]  # u, v, y, x
    return basis.reshape(BLOCK * BLOCK, 1, BLOCK, BLOCK).to(device=device, dtype=dtype)


def smooth_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding with a useful gradient: round(x) + (x - round(x))^3 (Shin and Song, 2017).

    It passes through every integer and stays within 1/8 of true rounding, and its gradient is
    3 (x - round(x))^2 instead of zero, so the optimiser learns which coefficients survive.
    """
    rounded = torch.round(x).detach()
    return rounded + (x - rounded) ** 3


def _code_plane(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """DCT, quantise, dequantise and inverse DCT of ``N x 1 x H x W`` planes (H, W: 8k)."""
    basis = _dct_basis(plane.device, plane.dtype)
    coefficients = F.conv2d(plane, basis, stride=BLOCK)
    divisors = table.to(plane.dtype).reshape(1, BLOCK * BLOCK, 1, 1)
    kept = smooth_round(coefficients / divisors) * divisors
    return F.conv_transpose2d(kept, basis, stride=BLOCK)


def _colour(image: torch.Tensor, matrix: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    weights = _constant(matrix, image.device, image.dtype)
    return torch.einsum("oc,bchw->bohw", weights, image)


def jpeg_round_trip(image: torch.Tensor, quality: float) -> torch.Tensor:
    """``image`` (``B x 3 x H x W`` in [0, 1]) as libjpeg would decode it after encoding it at
    ``quality`` with 4:2:0 chroma; same shape, differentiable almost everywhere."""
    batch, _, height, width = image.shape
    pad_h, pad_w = (-height) % MCU, (-width) % MCU
    # libjpeg fills partial blocks by repeating the edge pixels.
    padded = F.pad(image.clamp(0, 1), (0, pad_w, 0, pad_h), mode="replicate") * 255.0
    ycbcr = _colour(padded, RGB_TO_YCBCR)
    luma = ycbcr[:, :1] - 128.0  # level shift; Cb and Cr are already centred on 0
    chroma = F.avg_pool2d(ycbcr[:, 1:], 2)  # libjpeg's h2v2 downsampling: 2 x 2 means
    luma = _code_plane(luma, quantisation_table(LUMA_TABLE, quality, image.device))
    chroma = _code_plane(
        chroma.reshape(batch * 2, 1, *chroma.shape[-2:]),
        quantisation_table(CHROMA_TABLE, quality, image.device),
    ).reshape(batch, 2, *chroma.shape[-2:])
    # "Fancy" upsampling: 3/4 nearer sample + 1/4 farther one in each direction, edges repeated.
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    rgb = _colour(torch.cat([luma + 128.0, chroma], dim=1), YCBCR_TO_RGB)
    return (rgb / 255.0).clamp(0, 1)[..., :height, :width]
