"""The engine lane as a stream: cloak jobs queued while others run join them mid-way.

A job's photo is read (file) or unpacked (pixels) when it joins, its faces share each model's
forward and backward pass with the photos already in flight, and it is answered the moment its
own steps are done. Every photo keeps its own seed and step count, so its pixels are what it
would get alone (up to the last bits of batched arithmetic). ``batch_photos`` bounds how many
are in flight; 1 runs the jobs one after another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facecloak.imageio import LoadedImage, load_image
from facecloak.server.handlers import EngineHost, unpack_pixels
from facecloak.server.jobs import Job, JobFailed
from facecloak.server.worker import fail_job

if TYPE_CHECKING:
    from facecloak.engine import PixelsOutcome, PixelsTask


@dataclass
class _Joined:
    """A job in flight and what its answer needs."""

    job: Job
    started: float
    image: LoadedImage | None = None  # cloak_file: the photo as read
    dtype: np.dtype | None = None  # cloak_pixels: the samples' type


class JobStream:
    """Runs the engine lane's jobs through :meth:`facecloak.engine.Engine.cloak_stream`."""

    def __init__(self, host: EngineHost, batch_photos: int, log: logging.Logger) -> None:
        self.host = host
        self.batch_photos = max(1, batch_photos)
        self.log = log

    def __call__(
        self, first: Job, more: Callable[[int], list[Job]], done: Callable[[Job], None]
    ) -> None:
        """Serve ``first`` and whatever ``more`` hands over while it runs; ``done`` releases
        each job's place in the queue once it is answered."""
        if self.host.engine is None:
            first.fail("engine_failed", f"the engine is not available ({self.host.state})")
            done(first)
            return
        from facecloak.engine import PixelsTask

        waiting = [first]
        joined: dict[int, _Joined] = {}

        def feed(live: int) -> list[PixelsTask]:
            jobs = waiting[:]
            waiting.clear()
            room = self.batch_photos - live - len(jobs)
            if room > 0:
                jobs += more(room)
            tasks = []
            for job in jobs:
                task = self._join(job, joined, PixelsTask)
                if task is None:
                    done(job)
                else:
                    tasks.append(task)
            return tasks

        def deliver(task: PixelsTask, outcome: PixelsOutcome | Exception) -> None:
            entry = joined.pop(id(task))
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                self._answer(entry, outcome)
            except Exception as error:
                fail_job(entry.job, error, self.log)
            finally:
                self.log.info("%s %s %s", entry.job.id, entry.job.request.op, entry.job.state)
                done(entry.job)

        self.host.engine.cloak_stream(feed, deliver)

    def _join(self, job: Job, joined: dict[int, _Joined], task_type: type) -> PixelsTask | None:
        """The job's photo as an engine task, or ``None`` when the job already ended."""
        if job.cancel_requested.is_set():
            job.fail("cancelled", "cancelled before it started")
            return None
        job.state = "running"
        self.log.info("%s %s started", job.id, job.request.op)
        entry = _Joined(job, time.perf_counter())
        args = job.request.args
        try:
            if job.request.op == "cloak_file":
                entry.image = load_image(args["input"])
                pixels = entry.image.pixels
            else:
                pixels = unpack_pixels(job.payload, args)
                job.payload = None
                entry.dtype = pixels.dtype
        except Exception as error:
            fail_job(job, error, self.log)
            return None
        options = args["options"]
        task = task_type(pixels, options.budget, seed=options.seed, progress=job.set_progress)
        joined[id(task)] = entry
        return task

    def _answer(self, entry: _Joined, outcome: PixelsOutcome) -> None:
        """Write the cloaked file, or send the cloaked pixels back."""
        from facecloak.engine import FileTask, PhotoReport, save_cloaked

        job, args = entry.job, entry.job.request.args
        options = args["options"]
        if entry.image is not None:
            task = FileTask(
                args["input"], args["output"], options.budget, seed=options.seed,
                overwrite=args["overwrite"], jpeg_quality=options.jpeg_quality,
            )  # fmt: skip
            report = PhotoReport(input=str(task.source), output=str(task.destination))
            save_cloaked(task, entry.image, outcome, report)
            report.seconds = round(time.perf_counter() - entry.started, 2)
            if not report.ok:
                raise JobFailed("image_error", report.error or "the image could not be cloaked")
            job.finish({"report": report.to_dict(), "seconds": report.seconds})
            return
        cloaked, faces = outcome
        cloaked = np.ascontiguousarray(cloaked, dtype=entry.dtype)
        report: dict[str, Any] = {
            "faces": [asdict(face) for face in faces],
            "faces_found": len(faces),
            "faces_cloaked": sum(face.cloaked for face in faces),
            "mode": options.budget.name,
            "seed": options.seed,
        }
        row = args["width"] * args["channels"] * args["bit_depth"] // 8
        shape = {k: args[k] for k in ("width", "height", "channels", "bit_depth")}
        seconds = time.perf_counter() - entry.started
        job.finish(
            {**shape, "stride": row, "report": report, "seconds": seconds},
            payload=cloaked.reshape(-1).view(np.uint8),
        )
