"""The threads that run jobs, one per lane; a failing job fails alone, the worker goes on."""

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
        except JobCancelled:
            job.fail("cancelled", "cancelled")
        except JobFailed as error:
            job.fail(error.code, str(error))
        except ImageError as error:
            job.fail("image_error", str(error))
        except MemoryError:
            job.fail("out_of_memory", "not enough memory for this image")
        except Exception as error:  # a bug or a corrupt input must not stop the server
            self.log.exception("%s failed", job.id)
            job.fail("internal", f"internal error: {type(error).__name__}: {error}")
        if not job.finished.is_set():
            job.fail("internal", "the job ended without a result")
        self.log.info("%s %s %s", job.id, job.request.op, job.state)
