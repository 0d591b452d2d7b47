"""The same batch on a Ray cluster (``--ray ADDRESS``, or ``--ray local`` for one started here).

Ray is an optional extra (``pip install 'facecloak[ray]'``). Files go out as Ray tasks; each
worker process builds the engine on its first task and keeps it warm for the next ones. The
driver (this process) keeps the manifest: ``start`` when a task is sent, ``done`` when its
result comes back, so the destination and manifest are the same as a local run's. Paths must
be the same on every node (one machine, or a shared file system). A worker lost mid-task is
retried by Ray; since every output is written atomically to its one planned path, a retry
replaces, never duplicates.

``local`` is only started in a private network namespace (``facecloak.batch.isolation``: the
``facecloak batch`` command moves itself into one first), so that none of Ray's ports is on the
network; ``allow_network=True`` starts it as Ray would, on the machine's network address.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from facecloak.batch.backends import EngineBackend
from facecloak.batch.isolation import IsolationError, isolated
from facecloak.batch.manifest import Manifest
from facecloak.batch.runner import OnResult, record_result, record_start
from facecloak.batch.settings import BatchSettings
from facecloak.batch.work import FileResult, Planned, process

RETRIES = 3
Task = Callable[[Planned, BatchSettings], FileResult]


class RayMissing(Exception):
    """Ray is not installed (it is an optional extra)."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayMissing(
            "--ray needs Ray, an optional extra: pip install 'facecloak[ray]'"
        ) from None
    return ray


_warm: dict[str, EngineBackend] = {}  # per worker process: the engine stays loaded


def cloak_task(item: Planned, settings: BatchSettings) -> FileResult:
    """What one Ray task does: the local batch's per-file work, on this worker's engine."""
    key = settings.fingerprint() + settings.device
    backend = _warm.get(key)
    if backend is None:
        backend = _warm[key] = EngineBackend(settings)
    return process(item, backend, lambda: False, settings.cloak)


def run_ray(
    address: str,
    todo: Sequence[Planned],
    manifest: Manifest,
    settings: BatchSettings,
    workers: int,
    on_result: OnResult,
    task: Task | None = None,
    allow_network: bool = False,
) -> bool:
    """Run ``todo`` as Ray tasks; returns ``True`` if interrupted (Ctrl-C).

    ``address="local"`` starts a cluster here: only in a private network namespace
    (``isolation.isolate()`` first), unless ``allow_network``; else ``IsolationError``.
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            private = isolated()
            if not private and not allow_network:
                raise IsolationError(
                    "--ray local: this process is not in a private network namespace, so Ray "
                    "would listen on the network (call facecloak.batch.isolation.isolate() "
                    "first, as facecloak batch does, or allow the network)"
                )
            ray.init(
                num_cpus=workers, include_dashboard=False, logging_level="ERROR",
                **({"_node_ip_address": "127.0.0.1"} if private else {}),
            )  # fmt: skip
        else:
            ray.init(address=address, logging_level="ERROR")
    remote = ray.remote(num_cpus=1, max_retries=RETRIES)(task or cloak_task)
    limit = 2 * max(1, int(ray.cluster_resources().get("CPU", workers)))
    queue = list(todo)
    inflight: dict[Any, Planned] = {}
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                item = queue.pop(0)
                # Ours from the start line on: a retried task may replace its own output.
                owned = item.overwrite or not item.path.exists()
                item = dataclasses.replace(item, overwrite=owned)
                record_start(manifest, item, settings)
                inflight[remote.remote(item, settings)] = item
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                item = inflight.pop(ref)
                result = _result(ray, ref, item)
                record_result(manifest, item, result, settings)
                on_result(result)
    except KeyboardInterrupt:
        for ref in inflight:
            ray.cancel(ref, force=True)
        return True
    finally:
        if started_here:
            ray.shutdown()
    return False


def _result(ray: Any, ref: Any, item: Planned) -> FileResult:
    try:
        return ray.get(ref)
    except Exception as error:  # a task that kept failing: the batch goes on
        lines = [ln for ln in str(error).splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else type(error).__name__
        return FileResult(str(item.source.path), item.out, "failed", error=f"ray: {why}")
