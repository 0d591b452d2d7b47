"""Shared fixtures: where the real data lives, and skips that say loudly why."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# Batched passes round the last bits of a few gradients differently; Adam's per-pixel
# normalisation can turn that into a step of the other sign for a pixel (a tenth of a face's
# gradients are under 1e-8, and Adam moves them a full step in whatever sign they have), and
# the final fit accepts any scale that lands within FIT_FLOOR .. 1 of the budget, so a photo
# batched can end a level brighter or darker over much of its face than alone. Measured
# (2026-11-28, the server test's three astronaut crops, low mode, 10 steps): at most 6 levels
# apart, on up to 4.5 % of the channels (the change's energy 7 % apart), yet the two changes
# correlate at 0.94-0.998. A batching bug does not: a wrong seed correlates at 0.29-0.31, a
# mixed-up photo at 0.01. The bound on levels is the mode's per-pixel cap (12 for mid): no
# channel moves further from its solo value than one cloak may move it at all.
MAX_LEVELS = 12
MIN_CORRELATION = 0.8


def assert_same_cloak(alone: np.ndarray, together: np.ndarray, original: np.ndarray) -> None:
    """A photo cloaked in a batch got the cloak it gets alone: within the per-pixel cap of it,
    and the same pattern of change (correlation over the channels either one changed)."""
    alone, together, original = (a.astype(np.int64) for a in (alone, together, original))
    assert np.abs(alone - together).max() <= MAX_LEVELS, "batching moves a few levels, no more"
    changed = (alone != original) | (together != original)
    assert changed.any(), "the photo was cloaked"
    correlation = np.corrcoef((alone - original)[changed], (together - original)[changed])[0, 1]
    assert correlation >= MIN_CORRELATION, f"not the same cloak (correlation {correlation:.2f})"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test LOUDLY when the data is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = (
            f"SKIPPED: real test data missing at {path} (../shared/data is not on this machine); "
            "CI has it, so this test runs there"
        )
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    return shared_data("faces", "lfw62")
