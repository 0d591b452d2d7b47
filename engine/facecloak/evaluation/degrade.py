"""What happens to a cloaked photo between upload and the tracker's database."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

Degradation = Callable[[np.ndarray], np.ndarray]


def as_saved(pixels: np.ndarray) -> np.ndarray:
    return pixels


def jpeg75(pixels: np.ndarray) -> np.ndarray:
    """A scraper or a social network re-encoding the photo at JPEG quality 75 (4:2:0)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def half_size(pixels: np.ndarray) -> np.ndarray:
    """A downscale to half the width and height (antialiased), as thumbnails are made."""
    image = Image.fromarray(pixels)
    size = (max(1, image.width // 2), max(1, image.height // 2))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


DEGRADATIONS: dict[str, Degradation] = {"saved": as_saved, "jpeg75": jpeg75, "half": half_size}
