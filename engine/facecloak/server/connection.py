"""One client connection: check the peer, read requests, follow their jobs, send replies.

Each connection has its own thread, so a slow client never holds up the others. While a job
runs, the connection forwards its progress, accepts a ``cancel`` for it, and cancels it if the
client disappears. A bad request gets an error reply; only frames that cannot be understood
(or a payload the server will not read) close the connection.
"""

from __future__ import annotations

import contextlib
import hmac
import select
import socket
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from facecloak_bridge import wire

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

    def serve(self) -> None:
        try:
            if self.token is None and not self._same_user():
                return
            while not self.server.stopping.is_set():
                try:
                    header, size = wire.read_header(self.sock)
                except wire.PeerClosed:
                    return
                except wire.FrameError as error:
                    self._error("bad_frame", str(error))
                    return
                if not self._handle(header, size):
                    return
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

    def _send(self, header: dict[str, Any], payload: Any = None) -> None:
        reply = {"v": wire.PROTOCOL_VERSION, "id": self.request_id, **header}
        wire.send_frame(self.sock, reply, payload)

    def _error(self, code: str, message: str) -> None:
        wire.send_frame(self.sock, wire.error_header(self.request_id, code, message))

    def _handle(self, header: dict[str, Any], size: int) -> bool:
        """Answer one request; ``False`` when the connection must close."""
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
            request = parse_request(header, size, self.server.limits)
        except RequestError as error:
            self.server.log.info("refused %s: %s", header.get("op"), error)
            self._error(error.code, str(error))
            return size == 0  # an unread payload would be taken for the next frame
        if request.op == "health":
            self._send({"type": "result", **self.server.health()})
        elif request.op == "shutdown":
            self._send({"type": "result", "stopping": True})
            self.server.request_stop("asked by a client")
            return False
        elif request.op in ("progress", "cancel"):
            return self._job_query(request)
        else:
            return self._submit(request)
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

    def _submit(self, request: Request) -> bool:
        queue = self.server.queue
        payload = None
        if request.payload_size:
            try:
                queue.reserve(request.payload_size)
            except QueueFull as error:
                self._error("busy", str(error))
                return False
            payload = np.empty(request.payload_size, dtype=np.uint8)
        try:
            if payload is not None:
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
                return self._follow(job)
            finally:
                job.close()
        finally:
            queue.release(request.payload_size)

    def _follow(self, job: Job) -> bool:
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
        else:
            self._send({"type": "result", "job": job.id, **job.result}, job.result_payload)
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
