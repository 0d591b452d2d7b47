"""The optimiser's JPEG round trip against libjpeg itself (through Pillow) on a real photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
import torch
from facecloak.jpeg import (
    CHROMA_TABLE,
    LUMA_TABLE,
    jpeg_round_trip,
    quantisation_table,
    smooth_round,
)
from facecloak.pixels import to_unit
from PIL import Image


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A face-sized crop of scikit-image's public-domain astronaut photo (odd size on purpose:
    the codec pads to 16-pixel blocks and must crop back)."""
    return np.ascontiguousarray(skimage.data.astronaut()[20:270, 110:343])


def _libjpeg(pixels: np.ndarray, quality: int) -> tuple[np.ndarray, dict]:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    decoded = Image.open(buffer)
    return np.asarray(decoded.convert("RGB")), decoded.quantization


@pytest.mark.parametrize("quality", [60, 75, 95])
def test_tables_are_the_ones_libjpeg_writes(photo, quality):
    _, tables = _libjpeg(photo, quality)
    assert quantisation_table(LUMA_TABLE, quality).int().flatten().tolist() == list(tables[0])
    assert quantisation_table(CHROMA_TABLE, quality).int().flatten().tolist() == list(tables[1])


@pytest.mark.parametrize("quality", [60, 75, 95])
def test_round_trip_is_what_libjpeg_decodes(photo, quality):
    decoded, _ = _libjpeg(photo, quality)
    ours = jpeg_round_trip(to_unit(photo), float(quality))[0].permute(1, 2, 0).numpy() * 255.0
    assert ours.shape == photo.shape
    ours_error = np.abs(ours - decoded).mean()
    codec_change = np.abs(photo.astype(np.float32) - decoded).mean()
    # libjpeg's integer DCT and its 8-bit output differ from this float pipeline by well under
    # a level on average; the codec itself changes the photo by two to four levels.
    assert ours_error < 1.0
    assert codec_change > 1.5 * ours_error


def test_batch_members_are_coded_independently(photo):
    images = torch.cat([to_unit(photo), to_unit(photo[::-1].copy())])
    together = jpeg_round_trip(images, 80.0)
    apart = torch.cat([jpeg_round_trip(images[i : i + 1], 80.0) for i in range(2)])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=0)


def test_gradient_reaches_every_pixel_and_is_finite(photo):
    image = to_unit(photo).requires_grad_()
    jpeg_round_trip(image, 75.0).square().sum().backward()
    assert torch.isfinite(image.grad).all()
    assert (image.grad.abs() > 0).float().mean() > 0.99


def test_smooth_round_passes_through_integers_and_stays_near_rounding():
    integers = torch.arange(-3.0, 4.0, dtype=torch.float64)
    assert torch.equal(smooth_round(integers), integers)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    y = smooth_round(x)
    assert (y - torch.round(x)).abs().max() <= 0.125 + 1e-9
    y.sum().backward()
    assert (x.grad >= 0).all() and x.grad.max() > 0.5
