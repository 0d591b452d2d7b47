"""Helpers the benchmarks share: where the real data is, big test photos, memory figures."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# FACECLOAK_SHARED_DATA points elsewhere, e.g. at a copy on a machine without ../shared.
SHARED_DATA = Path(os.environ.get("FACECLOAK_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    """A path under ../shared/data, or exit with a clear message when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        sys.exit(f"benchmark data missing: {path} (../shared/data is not on this machine)")
    return path


def photo_at_megapixels(path: Path, megapixels: float) -> np.ndarray:
    """The photo at ``path`` resized (Lanczos) to about ``megapixels``, as H x W x 3 uint8."""
    image = Image.open(path).convert("RGB")
    factor = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    size = (round(image.width * factor), round(image.height * factor))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS)).copy()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def gpu_peak_mb(device: str) -> float | None:
    """Peak GPU memory PyTorch allocated in this process, in MB; None off the GPU."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20
