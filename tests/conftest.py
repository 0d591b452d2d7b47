"""Shared fixtures: where the real data lives, and skips that say loudly why."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# Batched passes round the last bits of a few gradients differently; Adam's per-pixel
# normalisation can turn that into a step of the other sign for a pixel (a tenth of a face's
# gradients are under 1e-8, and Adam moves them a full step in whatever sign they have), so a
# few pixels end a few levels apart. Measured: at most 9 levels, on up to 2.0 % of the
# channels (a photo that ran 8 steps, joined by another after 2; 6 levels on 1.04 % before the
# JPEG codec changed on 2026-11-27), 1-2 levels on 0.02 % for photos batched from the start.
# The bound on levels is the mode's per-pixel cap (12 for mid): no channel moves further from
# its solo value than one cloak may move it at all. The share is what tells a batching bug: a
# wrong seed or a mixed-up photo differs by up to 24 levels over the whole face.
MAX_LEVELS = 12
MAX_SHARE = 0.03


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
