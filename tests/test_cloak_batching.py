"""Cloaking several photos together: each gets what it would get alone, arrivals join mid-way,
and a cancel or a faceless photo touches nobody else."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from facecloak.budget import budget_for
from facecloak.engine import Engine, PixelsTask

from tests.conftest import assert_same_cloak

QUICK = budget_for("mid").with_overrides(steps=4, extra_steps=0)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Two different photos with one face each (the second mirrored and cropped)."""
    astronaut = skimage.data.astronaut()
    other = np.ascontiguousarray(astronaut[20:470, ::-1])
    return [astronaut, other]


def test_batched_photos_match_their_solo_cloaks(engine, photos):
    solo = [engine.cloak_pixels(p, QUICK, seed=s) for p, s in zip(photos, (3, 9), strict=True)]
    batched = engine.cloak_pixels_many(
        [PixelsTask(p, QUICK, seed=s) for p, s in zip(photos, (3, 9), strict=True)]
    )
    for photo, (alone, alone_faces), together in zip(photos, solo, batched, strict=True):
        assert not isinstance(together, Exception)
        pixels, faces = together
        assert_same_cloak(alone, pixels, photo)
        assert [f.box for f in faces] == [f.box for f in alone_faces]
        assert all(f.cloaked for f in faces)
    assert np.any(batched[0][0] != photos[0]) and np.any(batched[1][0] != photos[1])


def test_a_cancelled_photo_stops_alone(engine, photos):
    class Cancelled(Exception):
        pass

    def cancel_at_two(done: int, _total: int) -> None:
        if done >= 2:
            raise Cancelled()

    seen: list[int] = []
    outcomes = engine.cloak_pixels_many(
        [
            PixelsTask(photos[0], QUICK, seed=1, progress=cancel_at_two),
            PixelsTask(photos[1], QUICK, seed=2, progress=lambda d, _t: seen.append(d)),
        ]
    )
    assert isinstance(outcomes[0], Cancelled)
    assert not isinstance(outcomes[1], Exception)
    assert seen == [1, 2, 3, 4], "the other photo ran all its steps"
    assert_same_cloak(engine.cloak_pixels(photos[1], QUICK, seed=2)[0], outcomes[1][0], photos[1])


def test_photos_join_a_running_batch_and_leave_when_done(engine, photos):
    """The server's pattern: a request arriving mid-way joins at its own step 0, and a short
    job is delivered before a long one that started earlier."""
    long = budget_for("mid").with_overrides(steps=8, extra_steps=0)
    first = PixelsTask(photos[0], long, seed=5)
    late = PixelsTask(photos[1], QUICK, seed=6)
    faceless = PixelsTask(np.full((64, 80, 3), 128, np.uint8), QUICK)
    calls: list[int] = []
    delivered: list[tuple[PixelsTask, int]] = []

    def feed(live: int) -> list[PixelsTask]:
        calls.append(live)
        return {1: [first], 3: [late, faceless]}.get(len(calls), [])

    def deliver(task: PixelsTask, outcome) -> None:
        assert not isinstance(outcome, Exception)
        delivered.append((task, len(calls)))

    engine.cloak_stream(feed, deliver)
    order = [task for task, _ in delivered]
    assert order == [faceless, late, first]
    assert calls[2] == 1, "the late photos were offered while the first was in flight"
    assert calls[-1] >= 1
    # Each is what it would be alone.
    results = {}
    engine.cloak_stream(lambda _n, q=[[first, late]]: q.pop() if q else [],
                        lambda t, o: results.__setitem__(id(t), o))  # fmt: skip
    assert_same_cloak(
        engine.cloak_pixels(photos[0], long, seed=5)[0], results[id(first)][0], photos[0]
    )
    assert_same_cloak(
        engine.cloak_pixels(photos[1], QUICK, seed=6)[0], results[id(late)][0], photos[1]
    )


def test_engine_thread_batches_photos_from_several_threads(engine, photos):
    """What ``facecloak batch --jobs 2`` does: two threads' photos share the engine's steps,
    and a failing photo raises in its own thread only."""
    import threading

    from facecloak.engine_thread import EngineThread

    service = EngineThread(engine, batch_photos=2)
    events: list[tuple[str, int]] = []
    second_queued = threading.Event()
    outcomes: dict[str, object] = {}

    def first_progress(done: int, _total: int) -> None:
        events.append(("first", done))
        if done == 1:
            second_queued.wait(30)

    def second_progress(done: int, _total: int) -> None:
        events.append(("second", done))
        if done == 2:
            raise LookupError("stop this one")  # e.g. the batch's Stopped

    def submit(name: str, task: PixelsTask) -> None:
        if name == "second":
            second_queued.set()
        try:
            outcomes[name] = service.cloak(task)
        except Exception as error:
            outcomes[name] = error

    threads = [
        threading.Thread(target=submit, args=("first", PixelsTask(photos[0], QUICK, seed=1,
                                                                   progress=first_progress))),
        threading.Thread(target=submit, args=("second", PixelsTask(photos[1], QUICK, seed=2,
                                                                    progress=second_progress))),
    ]  # fmt: skip
    threads[0].start()
    while not events:
        threading.Event().wait(0.01)
    threads[1].start()
    for thread in threads:
        thread.join(120)
    assert ("second", 1) in events
    assert events.index(("second", 1)) < events.index(("first", 4)), events
    assert isinstance(outcomes["second"], LookupError)
    pixels, faces = outcomes["first"]
    assert faces and all(face.cloaked for face in faces)
    assert_same_cloak(engine.cloak_pixels(photos[0], QUICK, seed=1)[0], pixels, photos[0])
