"""The batch's progress line: files, faces and time remaining, redrawn on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from facecloak.batch.work import FileResult


class BatchProgress:
    """Counts results as they come; the time left is extrapolated from the files worked on
    (files finished in an earlier run are counted but say nothing about speed)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.perf_counter()
        self.done = self.worked = self.faces = self.failed = 0

    def add(self, result: FileResult) -> None:
        self.done += 1
        self.faces += result.cloaked
        self.failed += result.status == "failed"
        self.worked += result.status != "done-before"
        self.draw()

    def remaining_seconds(self) -> float | None:
        if not self.worked:
            return None
        rate = (time.perf_counter() - self.started) / self.worked
        return rate * (self.total - self.done)

    def line(self) -> str:
        width = 24
        filled = round(width * self.done / self.total) if self.total else width
        left = self.remaining_seconds()
        eta = "--:--" if left is None else _clock(left)
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} files, "
            f"{self.faces} faces cloaked{failed}, {_clock(time.perf_counter() - self.started)} "
            f"elapsed, {eta} left"
        )

    def draw(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def _clock(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
