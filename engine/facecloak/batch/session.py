"""One batch run from start to end, for the command line, the benchmark and tests alike:
lock the destination, plan, run locally or on Ray, and hand back every file's result."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from facecloak.batch.backends import make_backend
from facecloak.batch.manifest import Manifest
from facecloak.batch.naming import DEFAULT_PATTERN
from facecloak.batch.runner import plan, remove_stale_temporaries, run_local
from facecloak.batch.settings import BatchSettings
from facecloak.batch.sources import SourceFile
from facecloak.batch.work import FileResult


@dataclass
class BatchRequest:
    sources: Sequence[SourceFile]
    destination: Path
    settings: BatchSettings
    pattern: str = DEFAULT_PATTERN
    jobs: int = 1
    overwrite: bool = False  # replace outputs that this batch did not make
    server: bool = False
    ray: str | None = None  # a Ray address, or "local"
    ray_workers: int = 2
    ray_task: Callable[..., FileResult] | None = None  # instead of the real one (fault tests)
    ray_allow_network: bool = False  # "local" outside a private network namespace (run_ray)


@dataclass
class BatchOutcome:
    results: list[FileResult]
    interrupted: bool
    seconds: float


def execute(
    request: BatchRequest, on_result: Callable[[FileResult], None] | None = None
) -> BatchOutcome:
    """Run the batch; ``on_result`` sees each file as it finishes (the progress bar)."""
    started = time.perf_counter()
    results: list[FileResult] = []

    def collect(result: FileResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    request.destination.mkdir(parents=True, exist_ok=True)
    with Manifest(request.destination) as manifest:
        remove_stale_temporaries(request.destination)
        planned = plan(
            request.sources, request.destination, manifest, request.settings,
            request.pattern, request.overwrite,
        )  # fmt: skip
        for result in planned.results:
            collect(result)
        if request.ray is not None:
            from facecloak.batch.ray_backend import run_ray

            interrupted = run_ray(
                request.ray, planned.todo, manifest, request.settings, request.ray_workers,
                collect, request.ray_task, request.ray_allow_network,
            )  # fmt: skip
        else:
            backend = make_backend(request.settings, request.server, request.jobs)
            interrupted = run_local(
                planned.todo, manifest, backend, request.settings, request.jobs, collect
            )
    return BatchOutcome(results, interrupted, time.perf_counter() - started)
