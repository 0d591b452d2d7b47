"""Shared fixtures: where the real data lives, and skips that say loudly why."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


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
