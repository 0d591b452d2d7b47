"""One file, start to finish: hash it, develop it if raw, cloak it into its output.

The same function runs in the local thread pool and inside Ray workers, so both backends
classify results alike: ``cloaked``, ``no-face`` (written unchanged but clean), ``skipped``
(not an image, or a format nobody here can read) and ``failed`` (with a one-line reason).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facecloak.batch.backends import Backend, StopCheck
from facecloak.batch.develop import DevelopError, darktable_cli, develop, is_raw
from facecloak.batch.manifest import fingerprint, sidecar_mtime
from facecloak.batch.sources import SourceFile

_UNSUPPORTED = ("not an image", "unsupported format", "is a folder")


@dataclass(frozen=True)
class Planned:
    """A source with its output decided: ``out`` inside the destination, ``path`` absolute."""

    source: SourceFile
    out: str
    path: Path
    overwrite: bool  # the output, if present, is one of ours (the manifest started it)


@dataclass
class FileResult:
    """What happened to one file; also what the manifest and the JSON summary record."""

    input: str
    out: str
    status: str  # cloaked | no-face | scrubbed | skipped | failed | done-before
    error: str = ""
    faces: int = 0
    cloaked: int = 0
    seconds: float = 0.0
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0
    sidecar_mtime_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def process(planned: Planned, backend: Backend, stop: StopCheck, cloak: bool = True) -> FileResult:
    """Do one file; every problem is a result, never an exception (but Ctrl-C's Stopped)."""
    started = time.perf_counter()
    source = planned.source
    result = FileResult(str(source.path), planned.out, "failed")
    if source.note:
        result.status, result.error = "skipped", f"{source.path}: {source.note}"
        return result
    try:
        printed = fingerprint(source.path, source.sidecar)
    except OSError as error:
        result.error = f"{source.path}: cannot read the file ({error.strerror or error})"
        return result
    result.sha256, result.size, result.mtime_ns = printed.sha256, printed.size, printed.mtime_ns
    result.sidecar_mtime_ns = sidecar_mtime(source.sidecar)
    work = Path(tempfile.mkdtemp(prefix="facecloak-batch-")) if is_raw(source.path) else None
    try:
        readable = source.path
        if work is not None:
            if not cloak or darktable_cli() is None:
                why = "darktable-cli is not installed" if cloak else "--no-cloak leaves raw files"
                result.status = "skipped"
                result.error = f"{source.path}: raw file not developed ({why})"
                return result
            readable = develop(source.path, source.sidecar, work)
        report = backend.process(
            readable, planned.path, overwrite=planned.overwrite, protect=[source.path], stop=stop
        )
        _classify(result, report, source.path, readable, cloak)
    except DevelopError as error:
        result.error = str(error)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        result.seconds = round(time.perf_counter() - started, 2)
    return result


def _classify(
    result: FileResult, report: dict[str, Any], source: Path, readable: Path, cloak: bool
) -> None:
    result.faces = int(report.get("faces_found", 0))
    result.cloaked = int(report.get("faces_cloaked", 0))
    if report.get("ok"):
        result.status = "scrubbed" if not cloak else "cloaked" if result.cloaked else "no-face"
        return
    error = str(report.get("error") or "unknown error")
    if readable != source:
        error = error.replace(str(readable), f"{source} (developed)")
    result.error = error
    unsupported = any(text in error for text in _UNSUPPORTED)
    result.status = "skipped" if unsupported else "failed"
