"""Shared fixtures: where the real data lives, and skips that say loudly why."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# Batched passes round the last bits of a few gradients differently; Adam's per-pixel
# normalisation can turn that into a step of the other sign for a pixel, so a few pixels end a
# few levels apart (at most a step or two of the rate's floor, 1/255 each, plus rounding).
# Measured: at most 6 levels, on up to 1.04 % of the channels (server requests that joined a
# batch mid-way). A wrong seed or a mixed-up photo differs by up to 24 levels in the whole face.
MAX_LEVELS = 8
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
