"""One engine thread that many threads hand photos to, so their faces are batched.

``facecloak batch --jobs N`` decodes and encodes in N threads; the photos they cloak meet here,
in :meth:`facecloak.engine.Engine.cloak_stream`, and share the models' passes (what the server
does for queued requests). Each caller blocks until its own photo is done.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from facecloak.engine import Engine, PixelsOutcome, PixelsTask


class EngineThread:
    """Runs ``engine``'s stream in a daemon thread with at most ``batch_photos`` in flight."""

    def __init__(self, engine: Engine, batch_photos: int = 4) -> None:
        self.engine = engine
        self.batch_photos = max(1, batch_photos)
        self._queue: queue.Queue[tuple[PixelsTask, Future]] = queue.Queue()
        self._futures: dict[int, Future] = {}
        self._thread = threading.Thread(target=self._run, name="facecloak-engine", daemon=True)
        self._thread.start()

    def cloak(self, task: PixelsTask) -> PixelsOutcome:
        """Cloak one photo with whatever else is in flight; raises what cloaking raised (a
        progress callback's exception included)."""
        future: Future = Future()
        self._queue.put((task, future))
        return future.result()

    def _run(self) -> None:
        while True:
            self._stream([self._queue.get()])  # block until there is work, then stream

    def _stream(self, waiting: list[tuple[PixelsTask, Future]]) -> None:
        try:
            self.engine.cloak_stream(lambda live: self._feed(waiting, live), self._deliver)
        except BaseException as error:  # the stream broke: fail its photos, keep serving
            for future in self._futures.values():
                if not future.done():
                    future.set_exception(error)
            self._futures.clear()

    def _feed(self, waiting: list[tuple[PixelsTask, Future]], live: int) -> list[PixelsTask]:
        """The photo that started the stream, then whatever was queued since, up to the cap."""
        taken, waiting[:] = list(waiting), []
        while live + len(taken) < self.batch_photos:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for task, future in taken:
            self._futures[id(task)] = future
        return [task for task, _ in taken]

    def _deliver(self, task: PixelsTask, outcome: PixelsOutcome | Exception) -> None:
        future = self._futures.pop(id(task))
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
