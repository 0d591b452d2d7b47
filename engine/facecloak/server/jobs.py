"""Jobs and the bounded queue they wait in.

A job belongs to the connection that submitted it; the connection follows it (progress, then a
result or an error) and cancels it if the client goes away. Each lane (``engine`` for cloaks,
``light`` for scrubs) is served by its own worker, so a quick scrub never waits behind a
minute-long cloak; the engine's worker may run several jobs at once, their faces batched. The
queue also bounds the bytes of pixel payloads held at once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from facecloak.server.validation import Request

LANES = ("engine", "light")


class JobCancelled(Exception):
    """Raised inside a running job (from its progress callback) once it is cancelled."""


class JobFailed(Exception):
    """A job that fails with a protocol error code and a one-line message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class QueueFull(Exception):
    """No room for another job (or its payload): the client should retry later."""


class Job:
    """One cloak or scrub; its state changes wake the connection that follows it."""

    _ids = itertools.count(1)

    def __init__(self, request: Request, payload: Any = None, lane: str = "engine") -> None:
        self.id = f"j{next(self._ids)}"
        self.request = request
        self.payload = payload
        self.lane = lane
        self.state = "queued"  # queued, running, done, failed, cancelled
        self.done = 0
        self.total = 0
        self.result: dict[str, Any] = {}
        self.result_payload: Any = None
        self.error: tuple[str, str] | None = None
        self.created = time.monotonic()
        self.finished = threading.Event()
        self.cancel_requested = threading.Event()
        self._pipe_lock = threading.Lock()
        self._abandoned = False  # nobody follows the job: close the pipe when it ends
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    @property
    def wake_fd(self) -> int:
        """Readable whenever progress or state changed; for ``select`` in the connection."""
        return self._wake_read

    def _wake(self) -> None:
        with self._pipe_lock, contextlib.suppress(OSError):  # a full pipe says "changed" too
            if self._wake_write >= 0:
                os.write(self._wake_write, b"!")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_read, 4096):
                pass

    def set_progress(self, done: int, total: int) -> None:
        """The engine's progress callback; it is also where a running job notices a cancel."""
        if self.cancel_requested.is_set():
            raise JobCancelled()
        self.done, self.total = int(done), int(total)
        self._wake()

    def cancel(self) -> None:
        self.cancel_requested.set()
        self._wake()

    def finish(self, result: dict[str, Any], payload: Any = None) -> None:
        self.result, self.result_payload = result, payload
        self._end("done")

    def fail(self, code: str, message: str) -> None:
        self.error = (code, " ".join(message.split()) or code)
        self._end("cancelled" if code == "cancelled" else "failed")

    def _end(self, state: str) -> None:
        self.state = state
        self.payload = None  # the request's pixels are no longer needed
        self.finished.set()
        self._wake()
        if self._abandoned:
            self._close_pipe()

    def close(self) -> None:
        """Nobody follows the job any more: release its pipe now, or when it ends.

        Closing early while a worker may still write would let the descriptor number be
        reused by another file, which the worker's write would then hit.
        """
        self._abandoned = True
        if self.finished.is_set():
            self._close_pipe()

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            for fd in (self._wake_read, self._wake_write):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_read = self._wake_write = -1

    def status(self) -> dict[str, Any]:
        return {"job": self.id, "state": self.state, "done": self.done, "total": self.total}


class JobQueue:
    """Bounded FIFO queues, one per lane, and a bound on the payload bytes held at once."""

    def __init__(self, max_jobs: int, max_bytes: int) -> None:
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self._lanes: dict[str, deque[Job]] = {lane: deque() for lane in LANES}
        self._running: dict[str, list[Job]] = {lane: [] for lane in LANES}
        self._known: OrderedDict[str, Job] = OrderedDict()
        self._bytes = 0
        self._closed = False
        self._condition = threading.Condition()

    def reserve(self, size: int) -> None:
        """Book memory for a payload before reading it, or :class:`QueueFull`."""
        with self._condition:
            if self._bytes + size > self.max_bytes:
                raise QueueFull(
                    f"the server holds {self._bytes:,} bytes of pixels already; try again later"
                )
            self._bytes += size

    def release(self, size: int) -> None:
        with self._condition:
            self._bytes = max(0, self._bytes - size)

    def submit(self, job: Job) -> None:
        with self._condition:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if self.pending() >= self.max_jobs:
                raise QueueFull(f"the queue is full ({self.max_jobs} jobs); try again later")
            self._lanes[job.lane].append(job)
            self._known[job.id] = job
            while len(self._known) > 1024:  # remember recent jobs for progress queries
                self._known.popitem(last=False)
            self._condition.notify_all()

    def take(self, lane: str, timeout: float) -> Job | None:
        """The next job of ``lane`` (skipping cancelled ones), or ``None`` after ``timeout``."""
        with self._condition:
            deadline = time.monotonic() + timeout
            while not self._lanes[lane]:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._condition.wait(remaining)
            job = self._lanes[lane].popleft()
            self._running[lane].append(job)
            return job

    def take_more(self, lane: str, limit: int) -> list[Job]:
        """Up to ``limit`` more queued jobs of ``lane``, without waiting: the ones that join a
        batch already running."""
        with self._condition:
            taken = []
            while self._lanes[lane] and len(taken) < limit:
                taken.append(self._lanes[lane].popleft())
            self._running[lane] += taken
            return taken

    def done_with(self, job: Job) -> None:
        with self._condition:
            if job in self._running[job.lane]:
                self._running[job.lane].remove(job)

    def get(self, job_id: str) -> Job | None:
        with self._condition:
            return self._known.get(job_id)

    def pending(self) -> int:
        """Jobs queued or running."""
        return sum(len(q) for q in self._lanes.values()) + self._running_count()

    def _running_count(self) -> int:
        return sum(len(jobs) for jobs in self._running.values())

    def counts(self) -> dict[str, int]:
        with self._condition:
            return {
                "queued": sum(len(q) for q in self._lanes.values()),
                "running": self._running_count(),
                "payload_bytes": self._bytes,
            }

    def close(self) -> None:
        """Refuse new jobs and cancel every queued or running one."""
        with self._condition:
            self._closed = True
            jobs = [job for q in self._lanes.values() for job in q]
            jobs += [job for running in self._running.values() for job in running]
            self._condition.notify_all()
        for job in jobs:
            job.cancel()
