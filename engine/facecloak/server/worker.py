"""The threads that run jobs, one per lane; a failing job fails alone, the worker goes on.

The light lane runs one job at a time. The engine lane runs a stream: the jobs queued while
others are being cloaked join them, so their faces share the models' passes
(:mod:`facecloak.server.batching`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from facecloak.imageio import ImageError
from facecloak.server.jobs import Job, JobCancelled, JobFailed, JobQueue


class Worker(threading.Thread):
    """Takes the jobs of one lane in order and turns every outcome into a reply."""

    def __init__(
        self,
        lane: str,
        queue: JobQueue,
        handler: Callable[[Job], None],
        log: logging.Logger,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"worker-{lane}", daemon=True)
        self.lane = lane
        self.queue = queue
        self.handler = handler
        self.log = log
        self.on_start = on_start
        self.stopping = threading.Event()

    def run(self) -> None:
        if self.on_start is not None:
            self.on_start()
        while not self.stopping.is_set():
            job = self.queue.take(self.lane, timeout=0.5)
            if job is not None:
                self.serve(job)

    def serve(self, job: Job) -> None:
        """Run one job taken from the queue and give its place back."""
        try:
            self.run_job(job)
        finally:
            self.queue.done_with(job)

    def run_job(self, job: Job) -> None:
        if job.cancel_requested.is_set():
            job.fail("cancelled", "cancelled before it started")
            return
        job.state = "running"
        self.log.info("%s %s started", job.id, job.request.op)
        try:
            self.handler(job)
        except Exception as error:  # a bug or a corrupt input must not stop the server
            fail_job(job, error, self.log)
        if not job.finished.is_set():
            job.fail("internal", "the job ended without a result")
        self.log.info("%s %s %s", job.id, job.request.op, job.state)


class StreamWorker(Worker):
    """Takes a lane's first job and hands it to a stream that keeps taking queued jobs."""

    def __init__(
        self,
        lane: str,
        queue: JobQueue,
        stream: Callable[[Job, Callable[[int], list[Job]], Callable[[Job], None]], None],
        log: logging.Logger,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(lane, queue, lambda job: None, log, on_start)
        self.stream = stream

    def serve(self, first: Job) -> None:
        """Stream ``first`` and every job that joins it; give all their places back."""
        taken = [first]

        def more(limit: int) -> list[Job]:
            jobs = self.queue.take_more(self.lane, limit)
            taken.extend(jobs)
            return jobs

        try:
            self.stream(first, more, self.queue.done_with)
        except Exception as error:  # the stream broke: its jobs fail, the server goes on
            self.log.exception("the engine stream failed")
            for job in taken:
                if not job.finished.is_set():
                    fail_job(job, error, self.log)
        finally:
            for job in taken:
                if not job.finished.is_set():
                    job.fail("internal", "the job ended without a result")
                self.queue.done_with(job)


def fail_job(job: Job, error: BaseException, log: logging.Logger) -> None:
    """Turn what went wrong into the job's protocol error code and one-line message."""
    if isinstance(error, JobCancelled):
        job.fail("cancelled", "cancelled")
    elif isinstance(error, JobFailed):
        job.fail(error.code, str(error))
    elif isinstance(error, ImageError):
        job.fail("image_error", str(error))
    elif isinstance(error, MemoryError):
        job.fail("out_of_memory", "not enough memory for this image")
    else:
        log.error("%s failed", job.id, exc_info=error)
        job.fail("internal", f"internal error: {type(error).__name__}: {error}")
