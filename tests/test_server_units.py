"""The server's small parts on their own: folders, lock, log, wire, validation, queue."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import stat
import threading

import pytest
from facecloak.commands.cloak import budget_from_args
from facecloak.server.jobs import Job, JobQueue, QueueFull
from facecloak.server.lock import InstanceLock
from facecloak.server.logsetup import setup_logging
from facecloak.server.paths import UnsafeFolderError, ensure_private_dir
from facecloak.server.validation import Limits, Request, RequestError, cloak_options, parse_request
from facecloak.server.worker import Worker
from facecloak_bridge import wire


def test_private_folder_is_created_tightened_and_squatters_refused(tmp_path):
    made = ensure_private_dir(tmp_path / "a" / "facecloak")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    made.chmod(0o755)
    ensure_private_dir(made)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(UnsafeFolderError, match="not a folder"):
        ensure_private_dir(link)
    if os.getuid() == 0:
        squatted = tmp_path / "squatted"
        squatted.mkdir(mode=0o777)
        os.chown(squatted, 65534, 65534)
        with pytest.raises(UnsafeFolderError, match="belongs to user id 65534"):
            ensure_private_dir(squatted)


def test_lock_admits_one_holder_and_frees_on_release(tmp_path):
    first, second = InstanceLock(tmp_path / "lock"), InstanceLock(tmp_path / "lock")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == os.getpid()
    first.release()
    assert second.acquire()
    second.release()


def test_log_is_private_and_rotates(tmp_path):
    log = setup_logging(tmp_path / "server.log", max_bytes=2000)
    for number in range(200):
        log.info("line %d of some length to fill the file", number)
    for handler in log.handlers:
        handler.flush()
    assert stat.S_IMODE((tmp_path / "server.log").stat().st_mode) == 0o600
    assert (tmp_path / "server.log.1").exists() and not (tmp_path / "server.log.4").exists()
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_wire_round_trip_and_bad_frames():
    left, right = socket.socketpair()
    with left, right:
        wire.send_frame(left, {"op": "x", "n": 1}, bytes(range(256)) * 10)
        header, size = wire.read_header(right)
        assert (
            header == {"op": "x", "n": 1}
            and wire.read_payload(right, size) == bytes(range(256)) * 10
        )
        left.sendall(wire.PREFIX.pack(b"NOPE", 2, 0) + b"{}")
        with pytest.raises(wire.FrameError, match="magic"):
            wire.read_header(right)
    left, right = socket.socketpair()
    with left, right:
        left.sendall(wire.PREFIX.pack(wire.MAGIC, 2, 0) + b"[]")
        with pytest.raises(wire.FrameError, match="object"):
            wire.read_header(right)
        left.close()
        with pytest.raises(wire.PeerClosed):
            wire.read_header(right)


def test_wire_carries_file_descriptors_and_refuses_too_many():
    left, right = socket.socketpair()
    reader, writer = os.pipe()
    try:
        wire.send_frame(left, {"op": "x"}, b"abc", [writer])
        fds: list[int] = []
        header, size = wire.read_header(right, fds)
        assert header == {"op": "x"} and wire.read_payload(right, size) == b"abc"
        assert len(fds) == 1 and fds[0] != writer
        os.write(fds[0], b"!")  # the same pipe, through another descriptor
        assert os.read(reader, 1) == b"!"
        wire.close_fds(fds)
        assert fds == []
        wire.send_frame(left, {"op": "y"}, None, [writer] * (wire.MAX_FDS + 1))
        with pytest.raises(wire.FrameError, match="too many file descriptors"):
            wire.read_header(right, fds)
        assert len(fds) == wire.MAX_FDS  # received, so the caller can close them
        wire.close_fds(fds)
        left.close()  # that frame's header is unread: the connection is unusable now
        right.close()
        left, right = socket.socketpair()
        wire.send_frame(left, {"op": "z"}, None, [writer])
        assert wire.read_header(right) == ({"op": "z"}, 0)  # not asked for: the kernel closes it
    finally:
        for fd in (reader, writer):
            os.close(fd)
        left.close()
        right.close()


def test_shm_field_is_checked_like_a_payload():
    header = {"v": 1, "op": "cloak_pixels", "width": 2, "height": 2, "channels": 3,
              "bit_depth": 8, "stride": 6, "shm": {"input": True, "output": True}}  # fmt: skip
    request = parse_request(header, 0, Limits(), fds=1, can_pass_fds=True)
    assert request.payload_size == 12 and request.args["shm_input"] and request.args["shm_output"]
    refused = {
        "over TCP": (header, 0, 1, False),
        "no descriptor": (header, 0, 0, True),
        "two descriptors": (header, 0, 2, True),
        "and a payload": (header, 12, 1, True),
        "unknown shm field": ({**header, "shm": {"input": True, "zero_copy": True}}, 0, 1, True),
        "shm not an object": ({**header, "shm": True}, 0, 1, True),
        "descriptor without shm": ({k: v for k, v in header.items() if k != "shm"}, 12, 1, True),
        "descriptor with health": ({"v": 1, "op": "health"}, 0, 1, True),
    }
    for name, (fields, size, fds, unix) in refused.items():
        with pytest.raises(RequestError) as caught:
            parse_request(fields, size, Limits(), fds=fds, can_pass_fds=unix)
        assert caught.value.code == "bad_request", name
    with pytest.raises(RequestError) as caught:
        parse_request(header, 0, Limits(max_payload_bytes=11), fds=1, can_pass_fds=True)
    assert caught.value.code == "too_large"


def test_cloak_options_mean_what_the_command_line_options_mean():
    options = cloak_options(
        {"mode": "low", "steps": 3, "max_change": 6, "region_dssim": 0.004, "photo_dssim": 0.002,
         "photo_faces": 5, "seed": 4}
    )  # fmt: skip
    args = argparse.Namespace(mode="low", dssim=None, region_dssim=0.004, photo_dssim=0.002,
                              photo_faces=5, max_change=6.0, steps=3, samples=None,
                              extra_steps=None)  # fmt: skip
    assert options.budget == budget_from_args(args) and options.seed == 4
    assert options.budget.dssim_limits(2) == [0.006, 0.006, 0.004]
    assert options.budget.dssim_limits(2, coverage=0.8, photo_faces=5) == [0.006, 0.006, 0.0025]
    assert options.budget.dssim_limits(2, coverage=0.8, photo_faces=6) == [0.006, 0.006, 0.004]
    bad_ones = ({"steps": True}, {"steps": 2.5}, {"mode": "max"}, {"turbo": 1}, {"seed": "1"},
                {"photo_faces": 0}, {"photo_faces": 1.5})  # fmt: skip
    for bad in bad_ones:
        with pytest.raises(RequestError):
            cloak_options(bad)


def test_limits_are_checked_before_the_payload():
    header = {"v": 1, "op": "cloak_pixels", "width": 100, "height": 100, "channels": 3,
              "bit_depth": 8, "stride": 300}  # fmt: skip
    assert parse_request(header, 30000, Limits()).args["stride"] == 300
    with pytest.raises(RequestError) as caught:
        parse_request(header, 30000, Limits(max_pixels=9999))
    assert caught.value.code == "too_large"
    with pytest.raises(RequestError) as caught:
        parse_request(header, 30000, Limits(max_payload_bytes=29999))
    assert caught.value.code == "too_large"


def test_queue_is_bounded_in_jobs_and_bytes_and_skips_cancelled_jobs():
    queue = JobQueue(max_jobs=2, max_bytes=100)
    jobs = [Job(Request("scrub_file"), lane="light") for _ in range(3)]
    queue.submit(jobs[0])
    queue.submit(jobs[1])
    with pytest.raises(QueueFull):
        queue.submit(jobs[2])
    queue.reserve(60)
    with pytest.raises(QueueFull):
        queue.reserve(41)
    queue.release(60)
    jobs[0].cancel()
    ran: list[str] = []
    worker = Worker("light", queue, lambda job: job.finish({"ran": ran.append(job.id)}),
                    logging.getLogger("test"))  # fmt: skip
    threading.Thread(target=worker.run, daemon=True).start()
    assert jobs[1].finished.wait(10) and jobs[0].finished.wait(10)
    worker.stopping.set()
    assert jobs[0].state == "cancelled" and jobs[1].state == "done" and ran == [jobs[1].id]
    for job in jobs:
        job.close()
