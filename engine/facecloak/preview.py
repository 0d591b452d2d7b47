"""Before/after pictures, so a person can see what the cloak changed (and that it is faint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecloak.imageio import save_image


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels[..., :3]
    if rgb.dtype == np.uint16:
        return (rgb >> 8).astype(np.uint8)
    if rgb.dtype != np.uint8:
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return rgb


def before_after(
    original: np.ndarray,
    cloaked: np.ndarray,
    destination: str | Path,
    *,
    amplify: float = 10.0,
    max_side: int = 1600,
    overwrite: bool = False,
    protect: tuple | list = (),
) -> Path:
    """Write original | cloaked | amplified difference side by side as one picture."""
    before, after = _to_uint8(original), _to_uint8(cloaked)
    difference = after.astype(np.int16) - before.astype(np.int16)
    amplified = np.clip(128 + difference * amplify, 0, 255).astype(np.uint8)
    gap = np.full((before.shape[0], max(4, before.shape[1] // 100), 3), 255, np.uint8)
    strip = np.concatenate([before, gap, after, gap, amplified], axis=1)
    step = max(1, int(np.ceil(max(strip.shape[:2]) / max_side)))
    return save_image(
        np.ascontiguousarray(strip[::step, ::step]),
        destination,
        overwrite=overwrite,
        protect=protect,
    )
