"""One client connection: check the peer, read requests, follow their jobs, send replies.

Each connection has its own thread, so a slow client never holds up the others. While a job
runs, the connection forwards its progress, accepts a ``cancel`` for it, and cancels it if the
client disappears. A bad request gets an error reply; only frames that cannot be understood
(or a payload the server will not read) close the connection.

On the Unix socket, pixels may come and go as sealed memory files instead of payloads (``shm``
in docs/protocol.md). Every file descriptor that arrives is closed by the end of its request,
whatever happens; the input's mapping lives as long as the job needs the pixels.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import select
import socket
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from facecloak_bridge import shm, wire

from facecloak.server.jobs import Job, QueueFull
from facecloak.server.listener import peer_uid
from facecloak.server.validation import Request, RequestError, parse_request

if TYPE_CHECKING:
    from facecloak.server.app import Server

HEARTBEAT_SECONDS = 2.0


class Connection:
    """Serves the requests of one connected client until it leaves."""

    def __init__(self, sock: socket.socket, server: Server, token: str | None = None) -> None:
        self.sock = sock
        self.server = server
        self.token = token  # TCP only: what every request must carry
        self.request_id: Any = None
        # Memory files travel only on the Unix socket (SCM_RIGHTS), never over TCP.
        self.can_pass_fds = token is None and sock.family == socket.AF_UNIX and shm.available()

    def serve(self) -> None:
        try:
            if self.token is None and not self._same_user():
                return
            while not self.server.stopping.is_set():
                fds: list[int] = []  # descriptors that came with this frame: closed below
                try:
                    try:
                        header, size = wire.read_header(self.sock, fds)
                    except wire.PeerClosed:
                        return
                    except wire.FrameError as error:
                        self._error("bad_frame", str(error))
                        return
                    if not self._handle(header, size, fds):
                        return
                finally:
                    wire.close_fds(fds)
        except OSError:
            return  # the client went away; nothing to answer
        except Exception as error:  # a bug here must cost one connection, not the server
            self.server.log.exception("connection failed")
            with contextlib.suppress(OSError, ValueError):
                self._error("internal", f"internal error: {type(error).__name__}: {error}")
        finally:
            self.sock.close()

    def _same_user(self) -> bool:
        uid = peer_uid(self.sock)
        if uid == self.server.uid:
            return True
        self.server.log.warning("refused a connection from user id %d", uid)
        self._error("refused", f"this server belongs to another user; user id {uid} refused")
        return False

    def _send(
        self, header: dict[str, Any], payload: Any = None, fds: list[int] | None = None
    ) -> None:
        reply = {"v": wire.PROTOCOL_VERSION, "id": self.request_id, **header}
        wire.send_frame(self.sock, reply, payload, fds or ())

    def _error(self, code: str, message: str) -> None:
        wire.send_frame(self.sock, wire.error_header(self.request_id, code, message))

    def _handle(self, header: dict[str, Any], size: int, fds: list[int]) -> bool:
        """Answer one request; ``False`` when the connection must close.

        ``fds``: the descriptors that came with it; the caller closes those left in the list.
        """
        request_id = header.get("id")
        usable = isinstance(request_id, int) or (
            isinstance(request_id, str) and len(request_id) <= 64
        )
        self.request_id = request_id if usable else None  # echoed in replies: keep it small
        if self.token is not None and not hmac.compare_digest(
            str(header.get("token", "")), self.token
        ):
            self._error("refused", "missing or wrong token for the TCP listener")
            return False
        try:
            request = parse_request(header, size, self.server.limits, len(fds), self.can_pass_fds)
        except RequestError as error:
            self.server.log.info("refused %s: %s", header.get("op"), error)
            self._error(error.code, str(error))
            return size == 0  # an unread payload would be taken for the next frame
        if request.op == "health":
            health = self.server.health()
            if not self.can_pass_fds:
                health["features"] = [f for f in health.get("features", ()) if f != shm.FEATURE]
            self._send({"type": "result", **health})
        elif request.op == "shutdown":
            self._send({"type": "result", "stopping": True})
            self.server.request_stop("asked by a client")
            return False
        elif request.op in ("progress", "cancel"):
            return self._job_query(request)
        else:
            return self._submit(request, fds)
        return True

    def _job_query(self, request: Request) -> bool:
        job = self.server.queue.get(request.args["job"] or "")
        if job is None:
            self._error("unknown_job", f"no job {request.args['job']!r} (finished long ago?)")
            return True
        if request.op == "cancel":
            job.cancel()
        self._send({"type": "result", **job.status()})
        return True

    def _submit(self, request: Request, fds: list[int]) -> bool:
        queue = self.server.queue
        shm_input = request.args.get("shm_input", False)
        payload = None
        if request.payload_size:  # a payload, or the memory file of shm input: held alike
            try:
                queue.reserve(request.payload_size)
            except QueueFull as error:
                self._error("busy", str(error))
                return shm_input  # a payload left unread would be taken for the next frame
        try:
            if shm_input:
                payload = self._map_input(fds, request.payload_size)
                if payload is None:
                    return True
            elif request.payload_size:
                payload = np.empty(request.payload_size, dtype=np.uint8)
                wire.recv_exact_into(self.sock, memoryview(payload))
            lane = "light" if request.op == "scrub_file" else "engine"
            job = Job(request, payload, lane)
            try:
                queue.submit(job)
            except QueueFull as error:
                job.fail("busy", str(error))  # ends it, so that close() frees its pipe now
                job.close()
                self._error("busy", str(error))
                return True
            payload = None
            try:
                return self._follow(job, request.args.get("shm_output", False))
            finally:
                job.close()
        finally:
            queue.release(request.payload_size)

    def _map_input(self, fds: list[int], size: int) -> np.ndarray | None:
        """The pixels of shm input, mapped read-only; ``None`` (answered) when the fd is bad.

        The descriptor is closed here (the mapping keeps its own reference to the memory file,
        dropped with the last array that uses it).
        """
        fd = fds.pop()
        try:
            shm.check(fd, size)
            return np.frombuffer(shm.map_readonly(fd, size), dtype=np.uint8)
        except (shm.ShmError, OSError, ValueError) as error:
            message = str(error) if isinstance(error, shm.ShmError) else f"cannot map it: {error}"
            self.server.log.info("refused cloak_pixels: %s", message)
            self._error("bad_request", message)
            return None
        finally:
            os.close(fd)

    def _follow(self, job: Job, shm_output: bool = False) -> bool:
        """Forward progress until the job ends, then its result; ``False`` if the client left."""
        self._send({"type": "accepted", "job": job.id, "pid": self.server.pid})
        sent = (-1, -1)
        last_frame = time.monotonic()
        while not job.finished.is_set():
            readable, _, _ = select.select([self.sock, job.wake_fd], [], [], HEARTBEAT_SECONDS)
            if job.wake_fd in readable:
                job.drain()
            if self.sock in readable and not self._read_while_running(job):
                job.cancel()
                return False
            now = time.monotonic()
            if not job.finished.is_set() and (
                (job.done, job.total) != sent or now - last_frame >= HEARTBEAT_SECONDS
            ):
                sent = (job.done, job.total)
                self._send({"type": "progress", **job.status()})
                last_frame = now
        if job.error is not None:
            self._error(*job.error)
            return True
        # The reply holds the last reference: the pixels are not kept with the finished job.
        payload, job.result_payload = job.result_payload, None
        result = {"type": "result", "job": job.id, **job.result}
        if shm_output and payload is not None:
            try:
                fd = shm.memfd_from(payload, "facecloak-result")
            except OSError as error:  # no memory file here: the payload will do
                self.server.log.warning("result through the socket, not shm: %s", error)
            else:
                try:
                    self._send({**result, "shm": True}, fds=[fd])
                finally:
                    os.close(fd)
                return True
        self._send(result, payload)
        return True

    def _read_while_running(self, job: Job) -> bool:
        """A frame from the client while its job runs: only ``cancel`` makes sense."""
        try:
            header, size = wire.read_header(self.sock)
        except (wire.FrameError, OSError):
            return False  # the client closed or broke the connection
        if header.get("op") == "cancel" and size == 0:
            job.cancel()
            return True
        self._error("busy", "one request at a time per connection; only cancel is accepted now")
        return size == 0
