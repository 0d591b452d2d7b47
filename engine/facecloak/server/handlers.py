"""The engine's host, the pixel payload's layout, and the scrub job.

The engine (PyTorch and the models) is loaded once, in the engine lane's thread, and reused for
every cloak (:mod:`facecloak.server.batching` runs those); the same budget and seed give the
same pixels as ``facecloak cloak``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from facecloak.server.jobs import Job, JobFailed

if TYPE_CHECKING:
    from facecloak.engine import Engine


class EngineHost:
    """Owns the engine: loads it once (in the engine lane's thread) and reports its state."""

    def __init__(self, models: list[str], device: str, log: logging.Logger) -> None:
        self.models = models
        self.device = device
        self.log = log
        self.state = "loading"
        self.engine: Engine | None = None

    def load(self) -> None:
        """Load the models (seconds); a failure fails each cloak job with the reason."""
        try:
            from facecloak.engine import Engine

            self.engine = Engine(self.models, device=self.device)
        except Exception as error:  # any import or model problem ends up in the reply
            self.state = f"failed: {' '.join(str(error).split()) or type(error).__name__}"
            self.log.exception("the engine failed to load")
            return
        self.state = "ready"
        self.log.info("engine ready in %.1f s (%s)", self.engine.load_seconds, self.models)


def unpack_pixels(payload: np.ndarray, args: dict[str, Any]) -> np.ndarray:
    """The payload (rows of ``stride`` bytes, native byte order) as ``H x W x C`` samples."""
    height, width, channels = args["height"], args["width"], args["channels"]
    dtype = np.dtype(np.uint8 if args["bit_depth"] == 8 else np.uint16)
    row = width * channels * dtype.itemsize
    rows = payload.reshape(height, args["stride"])[:, :row]
    if args["stride"] != row:
        rows = np.ascontiguousarray(rows)
    return rows.view(dtype).reshape(height, width, channels)


def scrub_file(job: Job) -> None:
    """Remove identifying metadata (``facecloak.scrub``); needs no models."""
    args = job.request.args
    try:
        from facecloak.scrub import ScrubError
        from facecloak.scrub import scrub_file as scrub
    except ImportError as error:
        raise JobFailed("unavailable", f"scrubbing is not available here ({error})") from None
    if job.cancel_requested.is_set():
        raise JobFailed("cancelled", "cancelled before it started")
    started = time.perf_counter()
    try:
        report = scrub(
            args["input"], None if args["in_place"] else args["output"],
            overwrite=args["overwrite"], in_place=args["in_place"], sidecars=args["sidecars"],
        )  # fmt: skip
    except ScrubError as error:
        raise JobFailed("scrub_error", str(error)) from None
    except ValueError as error:  # an option scrub_file does not know (sidecars)
        raise JobFailed("bad_request", str(error)) from None
    job.finish({"report": report.to_dict(), "seconds": time.perf_counter() - started})
