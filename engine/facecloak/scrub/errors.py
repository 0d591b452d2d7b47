"""The one exception the scrubber raises."""

from __future__ import annotations

import os
from pathlib import Path


def _printable(path: str | os.PathLike[str]) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in os.fsdecode(path))


class ScrubError(Exception):
    """A one-line, user-facing error that names the file (callers print it as is)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{_printable(path)}: {self.reason}")
