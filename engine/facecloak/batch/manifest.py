"""What a batch has finished, kept in its destination so that a re-run picks up where it left.

An append-only JSON-lines file: a ``start`` line before a file is worked on (so its output is
known to be ours and may be replaced), a ``done`` line once its output is in place. Each line
is one ``write`` and fsync'd, so a crash or SIGKILL loses at most the files in flight; a torn
last line is ignored. A lock file keeps two batches from writing into the same destination.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecloak.batch.naming import MANIFEST_NAME

LOCK_NAME = ".facecloak-batch.lock"
VERSION = 1


class ManifestError(Exception):
    """The destination's manifest cannot be used (locked by another batch, unwritable)."""


@dataclass(frozen=True)
class InputPrint:
    """An input's content hash, with the size and time that let a re-run trust it unread."""

    sha256: str
    size: int
    mtime_ns: int


def fingerprint(path: Path, sidecar: Path | None = None) -> InputPrint:
    """Hash the input (and the darktable edits that develop it) without loading it whole."""
    digest = hashlib.sha256()
    stat = path.stat()
    for part in (path, sidecar):
        if part is None:
            continue
        with part.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return InputPrint(digest.hexdigest(), stat.st_size, stat.st_mtime_ns)


class Manifest:
    """The destination's record of finished outputs; thread-safe appends."""

    def __init__(self, destination: Path) -> None:
        self.path = destination / MANIFEST_NAME
        self.done: dict[str, dict[str, Any]] = {}
        self.owned: set[str] = set()  # outputs this manifest has ever started: ours to replace
        self._lock = threading.Lock()
        self._lock_fd = _take_lock(destination / LOCK_NAME)
        self._read()
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            self.close()
            raise ManifestError(
                f"{self.path}: cannot write the manifest ({error.strerror})"
            ) from None
        if self._torn:
            os.write(self._fd, b"\n")  # a SIGKILL mid-line: start the next record cleanly

    def _read(self) -> None:
        self._torn = False
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as error:
            raise ManifestError(
                f"{self.path}: cannot read the manifest ({error.strerror})"
            ) from None
        self._torn = bool(data) and not data.endswith(b"\n")
        for line in data.splitlines():
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("out"), str):
                    self._apply(record)

    def _apply(self, record: dict[str, Any]) -> None:
        out = record["out"]
        self.owned.add(out)
        if record.get("event") == "done":
            self.done[out] = record
        elif record.get("event") == "start":
            self.done.pop(out, None)  # being redone: not finished until its next done line

    def append(self, event: str, out: str, **fields: Any) -> None:
        """Record one event durably (one write, then fsync)."""
        record = {"v": VERSION, "event": event, "out": out, **fields}
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
            os.fsync(self._fd)
            self._apply(record)

    def finished(self, out: str, source: Path, sidecar: Path | None, options: str) -> bool:
        """Whether ``out`` was finished from this very input with these options (and is there,
        unless the input was skipped as not an image). Hashes only inputs whose size or time
        changed since."""
        record = self.done.get(out)
        if record is None or record.get("options") != options:
            return False
        if record.get("status") != "skipped" and not (self.path.parent / out).is_file():
            return False
        try:
            stat = source.stat()
            if (stat.st_size, stat.st_mtime_ns) == (record.get("size"), record.get("mtime_ns")):
                return sidecar is None or record.get("sidecar_mtime_ns") == _mtime(sidecar)
            return fingerprint(source, sidecar).sha256 == record.get("sha256")
        except OSError:
            return False

    def close(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def sidecar_mtime(path: Path | None) -> int | None:
    """What :meth:`Manifest.finished` compares for a raw file's darktable edits."""
    return None if path is None else _mtime(path)


def _take_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as error:
        raise ManifestError(
            f"{path.parent}: cannot write in the destination ({error.strerror})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ManifestError(
            f"{path.parent}: another batch is writing into this destination"
        ) from None
    return fd
