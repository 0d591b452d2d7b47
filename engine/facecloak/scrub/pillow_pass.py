"""The Pillow fallback: rewrite the image from its pixels (lossless formats only).

Used for BMP and PPM (no metadata of their own to speak of, and exiftool cannot write them)
and for TIFF when exiftool is missing.  The orientation is applied to the pixels; the ICC
profile is kept.  Lossy formats (JPEG, WebP, HEIF, AVIF) never come here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from facecloak.imageio import load_image, save_image


def rewrite(source: Path, output: Path, fmt: str) -> None:
    """Write ``output`` (a fresh file in ``fmt``) from the pixels of ``source``."""
    if fmt == "PPM":
        _rewrite_ppm(source, output)
        return
    image = load_image(source)
    save_image(image.pixels, output, icc_profile=image.icc_profile)


def _rewrite_ppm(source: Path, output: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source, formats=["PPM"]) as img:
            img.load()
            img.save(output, format="PPM")
            before = np.asarray(img)
    with Image.open(output, formats=["PPM"]) as again:
        if not np.array_equal(np.asarray(again), before):
            raise ValueError("the rewritten PPM decodes differently")
