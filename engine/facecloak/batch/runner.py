"""The batch itself: plan the outputs, skip finished ones, run the rest on ``jobs`` threads.

A file is recorded ``start`` in the manifest before its output may be written and ``done``
right after, from the worker thread, so Ctrl-C or a crash loses at most the files in flight.
Ctrl-C sets a flag that the running cloak checks at each step: in-flight files are abandoned
(nothing half-written: outputs are written atomically) and queued ones never start.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from facecloak.batch.backends import Backend, BackendUnavailable, Stopped
from facecloak.batch.develop import is_raw
from facecloak.batch.manifest import Manifest
from facecloak.batch.naming import NamingError, output_relative, place, unique
from facecloak.batch.settings import BatchSettings
from facecloak.batch.sources import SourceFile
from facecloak.batch.work import FileResult, Planned, process

OnResult = Callable[[FileResult], None]
RECORDED = ("cloaked", "no-face", "scrubbed")


@dataclass
class Plan:
    todo: list[Planned] = field(default_factory=list)
    results: list[FileResult] = field(default_factory=list)  # decided without work


def plan(
    sources: Sequence[SourceFile],
    destination: Path,
    manifest: Manifest,
    settings: BatchSettings,
    pattern: str,
    overwrite: bool = False,
) -> Plan:
    """Name every output; files finished before with the same input and options are done."""
    result = Plan()
    kept: list[SourceFile] = []
    names: list[PurePosixPath] = []
    fmt = settings.output_format if settings.cloak else "own"
    for source in sources:
        try:
            names.append(output_relative(source.relative, source.path, pattern, fmt))
            kept.append(source)
        except NamingError as error:
            result.results.append(FileResult(str(source.path), "", "failed", error=str(error)))
    options = settings.fingerprint()
    for source, relative in zip(kept, unique(names), strict=True):
        out = relative.as_posix()
        if manifest.finished(out, source.path, source.sidecar, options):
            result.results.append(FileResult(str(source.path), out, "done-before"))
            continue
        try:
            path = place(destination, relative)
        except (NamingError, OSError) as error:
            result.results.append(FileResult(str(source.path), out, "failed", error=str(error)))
            continue
        owned = overwrite or out in manifest.owned
        result.todo.append(Planned(source, out, path, owned))
    return result


def record_start(manifest: Manifest, item: Planned, settings: BatchSettings) -> None:
    manifest.append("start", item.out, src=str(item.source.path), options=settings.fingerprint())


def record_result(
    manifest: Manifest, item: Planned, result: FileResult, settings: BatchSettings
) -> None:
    """``done`` for outputs in place, and for files that are simply not images (not for raw
    files skipped for want of darktable: installing it should bring them in)."""
    final = result.status in RECORDED or (
        result.status == "skipped" and not is_raw(item.source.path) and not item.source.note
    )
    if final:
        fields = result.to_dict()
        for key in ("out", "status"):
            fields.pop(key)
        manifest.append(
            "done", item.out, status=result.status, options=settings.fingerprint(), **fields
        )


def remove_stale_temporaries(destination: Path) -> int:
    """Temporary files of writes that a crash cut short; the manifest lock says no other
    batch writes here now."""
    removed = 0
    for folder, _dirs, files in os.walk(destination):
        for name in files:
            if name.startswith(".facecloak-") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(Path(folder) / name)
                    removed += 1
    return removed


def run_local(
    todo: Sequence[Planned],
    manifest: Manifest,
    backend: Backend,
    settings: BatchSettings,
    jobs: int,
    on_result: OnResult,
) -> bool:
    """Work through ``todo`` on ``jobs`` threads; returns ``True`` if interrupted.

    Only a window of files is queued at a time, so memory does not grow with the batch.
    """
    stop = threading.Event()

    def one(item: Planned) -> FileResult | None:
        if stop.is_set():
            return None
        record_start(manifest, item, settings)
        try:
            result = process(item, backend, stop.is_set, settings.cloak)
        except Stopped:
            return None
        except BackendUnavailable:
            raise  # no file can be done: one error for the batch, not one per file
        except Exception as error:  # a bug or MemoryError on one file: the batch goes on
            text = " ".join(str(error).split()) or type(error).__name__
            result = FileResult(str(item.source.path), item.out, "failed", error=text)
        record_result(manifest, item, result, settings)
        return result

    workers = max(1, jobs)
    queue = iter(todo)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch")
    pending: set[Future[FileResult | None]] = set()
    try:
        while True:
            for item in queue:
                pending.add(pool.submit(one, item))
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                break
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                if result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        return True
    finally:
        stop.set()  # on Ctrl-C or any error: in-flight cloaks stop at their next step
        pool.shutdown(wait=True, cancel_futures=True)
    return False
