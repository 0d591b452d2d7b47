"""The client that plug-ins and ``facecloak-client`` use to reach the local engine server.

One request per connection: the client sends it, the server answers ``accepted`` (with a job
id), then ``progress`` frames, then one ``result`` or ``error``. Pixels go both ways as sealed
memory files passed over the socket (``shm``) when this system and the server can, otherwise
as raw payload bytes. If no server answers, one is started; if it dies mid-request, it is
started again and the request retried once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from facecloak_bridge import shm, wire
from facecloak_bridge.errors import (
    BridgeError,
    Cancelled,
    EngineTimeout,
    RequestFailed,
    ServerLost,
)
from facecloak_bridge.launcher import Settings, start_server, wait_until_ready

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


@dataclass
class PixelResult:
    """Cloaked pixels in the layout they were sent in, but with rows packed (``stride``).

    ``pixels`` is a writable bytes-like buffer: a ``bytearray`` when the pixels came through
    the socket, an ``mmap.mmap`` (a private, copy-on-write mapping of the server's memory file)
    when they came through shared memory. Both work with ``bytes()``, ``len()``, slicing,
    ``memoryview`` and ``numpy.frombuffer``.
    """

    pixels: Any
    width: int
    height: int
    channels: int
    bit_depth: int
    stride: int
    report: dict[str, Any] = field(default_factory=dict)


class _Lost(Exception):
    """The connection broke before the server's answer: the server died or was killed."""

    def __init__(self, message: str, accepted: bool = False) -> None:
        super().__init__(message)
        self.accepted = accepted  # a job had started: retrying means doing it again


class Client:
    """Talks to the per-user server, starting it when needed (``autostart``)."""

    def __init__(
        self,
        settings: Settings | None = None,
        autostart: bool = True,
        shared_memory: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_environ()
        self.autostart = autostart
        # Pixels through memory files when possible; False (or shared_memory = no in
        # bridge.conf) always sends them through the socket.
        self.shared_memory = shared_memory and self.settings.shared_memory
        self.server_pid: int | None = None  # of the server that accepted the last job
        self.last_job: str | None = None
        self.last_seconds: float | None = None  # server-side work time of the last result
        self.last_transfer: str | None = None  # how the last pixels went: "shm" or "frames"
        self._features: set[str] | None = None  # what the server can do (from its health)
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ requests

    def health(self) -> dict[str, Any]:
        """The server's version, protocol, engine state and queue (starts a server if needed)."""
        return self._request({"op": "health"})[0]

    def is_running(self) -> bool:
        """Whether a server answers now; never starts one."""
        return self._probe()

    def shutdown(self) -> bool:
        """Ask a running server to stop; ``False`` when none was running."""
        if not self._probe():
            return False
        with contextlib.suppress(_Lost):  # it stopped before answering: as was asked
            self._exchange(self._open(), self._header({"op": "shutdown"}), None, None, None)
        return True

    def cancel(self, job: str) -> dict[str, Any]:
        """Cancel a queued or running job (by id, from another connection)."""
        return self._request({"op": "cancel", "job": job}, retry=False)[0]

    def progress(self, job: str) -> dict[str, Any]:
        """The state and progress of a job (by id)."""
        return self._request({"op": "progress", "job": job}, retry=False)[0]

    def cloak_file(
        self,
        source: str,
        destination: str,
        *,
        mode: str = "mid",
        seed: int = 0,
        overwrite: bool = False,
        options: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> dict[str, Any]:
        """Cloak one photo file into ``destination``; returns the engine's photo report."""
        fields = {
            "op": "cloak_file",
            "input": os.path.abspath(source),
            "output": os.path.abspath(destination),
            "overwrite": overwrite,
            "options": _options(mode, seed, options),
        }
        return self._request(fields, progress=progress, cancel=cancel)[0]["report"]

    def scrub_file(
        self,
        source: str,
        destination: str | None = None,
        *,
        overwrite: bool = False,
        in_place: bool = False,
        sidecars: str = "report",
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> dict[str, Any]:
        """Remove identifying metadata; returns the scrub report."""
        fields: dict[str, Any] = {
            "op": "scrub_file",
            "input": os.path.abspath(source),
            "overwrite": overwrite,
            "in_place": in_place,
            "sidecars": sidecars,
        }
        if destination is not None:
            fields["output"] = os.path.abspath(destination)
        return self._request(fields, progress=progress, cancel=cancel)[0]["report"]

    def cloak_pixels(
        self,
        pixels: Any,
        width: int,
        height: int,
        channels: int,
        bit_depth: int = 8,
        stride: int | None = None,
        *,
        mode: str = "mid",
        seed: int = 0,
        options: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> PixelResult:
        """Cloak raw pixels (rows of ``stride`` bytes; 16-bit samples in native byte order).

        ``pixels`` is any contiguous bytes-like object (bytes, bytearray, array, numpy).
        """
        row = width * channels * (bit_depth // 8)
        fields: dict[str, Any] = {
            "op": "cloak_pixels",
            "width": width,
            "height": height,
            "channels": channels,
            "bit_depth": bit_depth,
            "stride": row if stride is None else stride,
            "options": _options(mode, seed, options),
        }
        memfd = self._pixels_in_memory(pixels)
        if memfd is None:
            self.last_transfer = "frames"
            reply, data = self._request(fields, pixels, progress=progress, cancel=cancel)
        else:
            self.last_transfer = "shm"
            fields["shm"] = {"input": True, "output": True}
            try:
                reply, data = self._request(fields, fds=[memfd], progress=progress, cancel=cancel)
            finally:
                os.close(memfd)
        return PixelResult(
            pixels=data if data is not None else bytearray(),
            width=reply["width"],
            height=reply["height"],
            channels=reply["channels"],
            bit_depth=reply["bit_depth"],
            stride=reply["stride"],
            report=reply.get("report", {}),
        )

    # ------------------------------------------------------------------ plumbing

    def _pixels_in_memory(self, pixels: Any) -> int | None:
        """A sealed memory file with the pixels, or ``None``: send them through the socket.

        Only when this system can pass memory files and the server says it takes them (asked
        once per client); any failure to make the file just means the socket.
        """
        if not (self.shared_memory and shm.available()):
            return None
        if self._features is None:
            self._features = set(self.health().get("features") or ())
        if shm.FEATURE not in self._features:
            return None
        try:
            return shm.memfd_from(pixels)
        except OSError:
            return None

    def _header(self, fields: dict[str, Any]) -> dict[str, Any]:
        header: dict[str, Any] = {"v": wire.PROTOCOL_VERSION, "id": next(self._ids)}
        header.update(fields)
        return header

    def _request(
        self,
        fields: dict[str, Any],
        payload: Any = None,
        *,
        fds: list[int] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
        retry: bool = True,
    ) -> tuple[dict[str, Any], Any]:
        header = self._header(fields)
        retries = 1 if retry and self.autostart else 0
        lost, again = "", ""
        # A connection can also land in the backlog of a server that is dying (killed, or
        # exiting when idle) and be reset before any job starts; those few quick reconnects
        # are not retries of the work, which happens once more at most.
        for attempt in range(5 if retry else 1):
            if attempt:
                time.sleep(0.05 * attempt)
            sock = self._connect()
            try:
                return self._exchange(sock, header, payload, progress, cancel, fds)
            except _Lost as error:
                lost = str(error)
                if error.accepted:
                    if not retries:
                        break
                    retries -= 1
                    again = " again after a restart"
            finally:
                sock.close()
        raise ServerLost(
            f"the engine stopped in the middle of the request{again} ({lost}); "
            f"no output was written; see {self.settings.log_path}"
        )

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.settings.reply_timeout)
        try:
            sock.connect(self.settings.socket_path)
        except OSError:
            sock.close()
            raise
        return sock

    def _connect(self) -> socket.socket:
        try:
            return self._open()
        except (FileNotFoundError, ConnectionRefusedError):
            if not self.autostart:
                raise BridgeError(
                    "no facecloak server is running (start one with: facecloak serve)"
                ) from None
        except PermissionError:
            raise BridgeError(
                f"permission denied on {self.settings.socket_path}: it belongs to another user"
            ) from None
        except OSError as error:
            raise BridgeError(
                f"cannot reach the facecloak server at {self.settings.socket_path}: "
                f"{error.strerror or error}"
            ) from None
        process = start_server(self.settings)
        wait_until_ready(self.settings, process, self._probe)
        return self._open()

    def _probe(self) -> bool:
        try:
            sock = self._open()
        except OSError:
            return False
        try:
            sock.settimeout(min(5.0, self.settings.reply_timeout))
            self._exchange(sock, self._header({"op": "health"}), None, None, None)
            return True
        except (OSError, _Lost, wire.FrameError, BridgeError):
            return False
        finally:
            sock.close()

    def _exchange(
        self,
        sock: socket.socket,
        header: dict[str, Any],
        payload: Any,
        progress: ProgressCallback | None,
        cancel: CancelCheck | None,
        fds: list[int] | None = None,
    ) -> tuple[dict[str, Any], Any]:
        try:
            wire.send_frame(sock, header, payload, fds or ())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may have refused the request early: its answer is still readable
        except socket.timeout:
            raise EngineTimeout("the engine did not take the request in time") from None
        self.last_job = None
        cancel_sent = False
        silent_since = time.monotonic()
        while True:
            if cancel is not None and not cancel_sent:
                if cancel():
                    self._send_cancel(sock)
                    cancel_sent = True
                    continue
                ready, _, _ = select.select([sock], [], [], 0.2)
                if not ready:
                    if time.monotonic() - silent_since > self.settings.reply_timeout:
                        raise EngineTimeout("the engine stopped answering")
                    continue
            try:
                reply, data = self._read_reply(sock)
            except _Lost as error:
                raise _Lost(str(error), accepted=self.last_job is not None) from None
            silent_since = time.monotonic()
            kind = reply.get("type")
            if kind == "accepted":
                self.server_pid = reply.get("pid")
                self.last_job = reply.get("job")
            elif kind == "progress":
                if progress is not None:
                    progress(int(reply.get("done", 0)), int(reply.get("total", 0)))
            elif kind == "error":
                error = reply.get("error") or {}
                code = str(error.get("code", "error"))
                message = str(error.get("message", "the request failed"))
                if code == "cancelled":
                    raise Cancelled(message)
                raise RequestFailed(code, message)
            elif kind == "result":
                self.last_seconds = reply.get("seconds")
                return reply, data

    def _read_reply(self, sock: socket.socket) -> tuple[dict[str, Any], Any]:
        fds: list[int] = []  # a memory file comes with a shm result only; all are closed here
        try:
            reply, size = wire.read_header(sock, fds)
            data = wire.read_payload(sock, size) if size else None
            if reply.get("type") == "result" and reply.get("shm") is True:
                data = _map_result(reply, fds)
            return reply, data
        except socket.timeout:
            raise EngineTimeout(
                f"the engine gave no answer for {self.settings.reply_timeout:.0f} s; "
                f"see {self.settings.log_path}"
            ) from None
        except wire.PeerClosed as error:
            raise _Lost(str(error)) from None
        except (ConnectionResetError, BrokenPipeError) as error:
            raise _Lost(error.strerror or str(error)) from None
        finally:
            wire.close_fds(fds)

    def _send_cancel(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the answer, or the lost connection, will tell
            wire.send_frame(sock, self._header({"op": "cancel"}))  # this connection's job


def _map_result(reply: dict[str, Any], fds: list[int]) -> Any:
    """The result pixels from the server's memory file, mapped copy-on-write (no copy made)."""
    try:
        stride, height = int(reply["stride"]), int(reply["height"])
        if len(fds) != 1:
            raise shm.ShmError(f"{len(fds)} file descriptors came with it, not one")
        shm.check(fds[0], stride * height, "the result's memory file")
        return shm.map_private(fds[0], stride * height)
    except (KeyError, TypeError, ValueError, OSError, shm.ShmError) as error:
        raise BridgeError(f"the engine's shared-memory result is unusable: {error}") from None


def _options(mode: str, seed: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    options: dict[str, Any] = {"mode": mode, "seed": seed}
    options.update(extra or {})
    return options
