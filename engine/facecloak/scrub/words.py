"""A tiny helper for the long name lists in this package."""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    """The space-separated names in ``text``."""
    return frozenset(text.split())
