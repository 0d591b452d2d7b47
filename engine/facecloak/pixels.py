"""Conversions between stored pixels (uint8, uint16 or float) and [0, 1] float tensors."""

from __future__ import annotations

import numpy as np
import torch


def levels(dtype: np.dtype) -> float | None:
    """Integer levels of a pixel type (None for float pixels, already in [0, 1])."""
    return 255.0 if dtype == np.uint8 else 65535.0 if dtype == np.uint16 else None


def to_unit(pixels: np.ndarray) -> torch.Tensor:
    """``H x W x C`` pixels to a ``1 x 3 x H x W`` float tensor in [0, 1] (alpha dropped)."""
    rgb = torch.from_numpy(np.array(pixels[..., :3], dtype=np.float32))
    return (rgb / (levels(pixels.dtype) or 1.0)).permute(2, 0, 1)[None]


def from_unit(region: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """``1 x 3 x h x w`` [0, 1] floats back to ``h x w x 3`` pixels of ``dtype``, rounded."""
    array = region[0].permute(1, 2, 0).clamp(0, 1).detach().cpu().numpy()
    steps = levels(dtype)
    return np.rint(array * steps).astype(dtype) if steps else array.astype(dtype)


def quantise(region: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
    """Round [0, 1] floats to the integer levels of ``dtype``, as a saved file will hold them."""
    steps = levels(dtype)
    region = region.clamp(0, 1)
    return torch.round(region * steps) / steps if steps else region
