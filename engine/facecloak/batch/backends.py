"""What turns one input file into one output file: the in-process engine (default), the
local server (``--server``) or the metadata scrubber alone (``--no-cloak``).

Each backend's ``process`` takes a readable image file and writes the output atomically, and
returns the engine's photo report as a dict. The engine backend decodes and encodes in the
calling thread and hands the pixels to one engine thread, so ``--jobs`` threads overlap file
work with cloaking, and the photos they cloak at the same time share the models' passes
(:mod:`facecloak.engine_thread`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from facecloak.batch.settings import BatchSettings
from facecloak.budget import budget_for

StopCheck = Callable[[], bool]


class BackendUnavailable(RuntimeError):
    """The models cannot load (or the server cannot be reached): the whole batch stops."""


class Stopped(Exception):
    """The batch is stopping (Ctrl-C): this file is abandoned, nothing was written."""


class Backend(Protocol):
    def process(
        self, source: Path, output: Path, *, overwrite: bool, protect: list[Path], stop: StopCheck
    ) -> dict[str, Any]: ...


class EngineBackend:
    """The models loaded once in this process, run by one engine thread for all ``--jobs``."""

    def __init__(self, settings: BatchSettings, batch_photos: int = 1) -> None:
        self.settings = settings
        self.batch_photos = batch_photos  # photos in flight together: one per --jobs thread
        self._thread: Any = None
        self._lock = threading.Lock()

    @property
    def engine_thread(self) -> Any:
        """The thread that cloaks, started with the engine on first use (a batch of
        non-images never loads the models)."""
        with self._lock:
            if self._thread is None:
                from facecloak.engine import Engine
                from facecloak.engine_thread import EngineThread

                try:
                    engine = Engine(self.settings.models, device=self.settings.device)
                except (ValueError, KeyError, RuntimeError) as error:
                    text = error.args[0] if isinstance(error, KeyError) else error
                    raise BackendUnavailable(str(text)) from error
                self._thread = EngineThread(engine, batch_photos=self.batch_photos)
            return self._thread

    def process(
        self, source: Path, output: Path, *, overwrite: bool, protect: list[Path], stop: StopCheck
    ) -> dict[str, Any]:
        from facecloak.engine import PhotoReport, PixelsTask
        from facecloak.imageio import ImageError, load_image, save_image

        report = PhotoReport(input=str(source), output=str(output))
        engine_thread = self.engine_thread

        def check(_done: int, _total: int) -> None:
            if stop():
                raise Stopped()

        try:
            image = load_image(source)
            icc, original = image.icc_profile, image.pixels
            del image  # only the cloaked copy stays in memory while it is encoded
            report.height, report.width = original.shape[:2]
            check(0, 0)
            task = PixelsTask(
                original, self.settings.budget, seed=self.settings.seed, progress=check
            )
            pixels, report.faces = engine_thread.cloak(task)
            del task
            del original
            check(0, 0)
            save_image(
                pixels, output, icc_profile=icc, overwrite=overwrite,
                jpeg_quality=self.settings.jpeg_quality, protect=protect,
            )  # fmt: skip
            report.ok = True
        except ImageError as error:
            report.error, report.output = str(error), None
        return report.to_dict()


class ServerBackend:
    """The warm local server (``facecloak serve``), reached through the bridge client."""

    def __init__(self, settings: BatchSettings) -> None:
        from facecloak_bridge.client import Client
        from facecloak_bridge.errors import BridgeError

        self.settings = settings
        self.client = Client()
        self.options = server_options(settings)
        try:
            models = self.client.health().get("models")
        except BridgeError as error:
            raise BackendUnavailable(f"the facecloak server cannot be reached: {error}") from None
        if models is not None and list(models) != list(settings.models):
            raise BackendUnavailable(
                f"the running server cloaks with {','.join(models)}, not "
                f"{','.join(settings.models)}; restart it or change --models"
            )

    def process(
        self, source: Path, output: Path, *, overwrite: bool, protect: list[Path], stop: StopCheck
    ) -> dict[str, Any]:
        from facecloak_bridge.errors import BridgeError, Cancelled, RequestFailed

        if stop():
            raise Stopped()
        try:
            return self.client.cloak_file(
                str(source), str(output), mode=self.settings.budget.name.split("+")[0],
                seed=self.settings.seed, overwrite=overwrite, options=self.options, cancel=stop,
            )  # fmt: skip
        except Cancelled:
            raise Stopped() from None
        except RequestFailed as error:
            return {"ok": False, "error": str(error), "faces_found": 0, "faces_cloaked": 0}
        except BridgeError as error:
            raise BackendUnavailable(f"the facecloak server failed: {error}") from None


def server_options(settings: BatchSettings) -> dict[str, Any]:
    """The budget as the server's options: the fields that differ from the named mode."""
    budget = settings.budget
    base = budget_for(budget.name.split("+")[0])
    options: dict[str, Any] = {"jpeg_quality": settings.jpeg_quality}
    for name in ("dssim", "max_change", "steps", "samples", "extra_steps"):
        value = getattr(budget, name)
        if value != getattr(base, name):
            options[name] = value * 255.0 if name == "max_change" else value
    other = {f.name for f in fields(budget)} - {"name", *options, "max_change"}
    if any(getattr(budget, n) != getattr(base, n) for n in other):
        raise ValueError("the server takes only the mode and the --dssim/--steps-style overrides")
    return options


class ScrubBackend:
    """``--no-cloak``: the file's own pixels, its identifying metadata removed."""

    def __init__(self, settings: BatchSettings) -> None:
        self.settings = settings

    def process(
        self, source: Path, output: Path, *, overwrite: bool, protect: list[Path], stop: StopCheck
    ) -> dict[str, Any]:
        from facecloak.scrub import ScrubError, scrub_file

        if stop():
            raise Stopped()
        try:
            scrub_file(source, output, overwrite=overwrite)
        except ScrubError as error:
            return {"ok": False, "error": str(error), "faces_found": 0, "faces_cloaked": 0}
        return {"ok": True, "output": str(output), "faces_found": 0, "faces_cloaked": 0}


def make_backend(settings: BatchSettings, server: bool = False, jobs: int = 1) -> Backend:
    if not settings.cloak:
        return ScrubBackend(settings)
    return ServerBackend(settings) if server else EngineBackend(settings, batch_photos=jobs)
