"""Image quality of a cloak: SSIM and PSNR over the whole photo and over the face regions."""

from __future__ import annotations

from collections.abc import Sequence

import kornia.metrics
import numpy as np

from facecloak.detect import Face
from facecloak.metrics import face_region_ssim
from facecloak.pixels import to_unit


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit pixels (inf when identical)."""
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """kornia's SSIM, 11-px Gaussian window, mean over pixels and channels."""
    return float(kornia.metrics.ssim(to_unit(a), to_unit(b), 11, padding="same").mean())


def _crop(pixels: np.ndarray, face: Face) -> np.ndarray:
    """The face's detection box (PSNR reads it alone; SSIM reads the photo around it)."""
    x, y, w, h = face.box
    top, left = max(0, int(y)), max(0, int(x))
    bottom = min(pixels.shape[0], int(np.ceil(y + h)))
    right = min(pixels.shape[1], int(np.ceil(x + w)))
    return pixels[top:bottom, left:right]


def photo_quality(original: np.ndarray, cloaked: np.ndarray, faces: Sequence[Face]) -> dict:
    """Whole-photo and per-face SSIM / PSNR (face figures are None when no face was found)."""
    a, b = original[..., :3], cloaked[..., :3]
    face_ssim = [face_region_ssim(a, b, f) for f in faces]
    face_psnr = [psnr(_crop(a, f), _crop(b, f)) for f in faces]
    return {
        "ssim": ssim(a, b),
        "psnr": psnr(a, b),
        "face_ssim": min(face_ssim) if face_ssim else None,
        "face_psnr": min(face_psnr) if face_psnr else None,
    }
