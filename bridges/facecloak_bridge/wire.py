"""Frames on the local socket: a fixed prefix, a JSON header, then raw payload bytes.

The server and the plug-ins' client both use this one module (standard library only, Python
3.8+), so the two ends cannot drift apart. Pixels travel as raw bytes after the header, never
as base64 inside JSON. On the Unix socket a frame may also carry file descriptors (``SCM_RIGHTS``,
sent with the frame's first bytes): the memory files of shared-memory pixels (``shm.py``). The
format is specified in docs/protocol.md.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
import struct
from typing import Any, Dict, Sequence

PROTOCOL_VERSION = 1
MAGIC = b"FCLK"
# magic, header length (bytes of UTF-8 JSON), payload length (raw bytes that follow the header)
PREFIX = struct.Struct(">4sIQ")
MAX_HEADER_BYTES = 64 * 1024
_CHUNK = 4 << 20
# File descriptors taken with one frame: more than a request may carry (one), so that a few
# extra are seen and refused; beyond this many the kernel closes them and the frame is refused.
MAX_FDS = 4
_FD_ROOM = (
    socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize) if hasattr(socket, "CMSG_SPACE") else 0
)
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)

Header = Dict[str, Any]


class FrameError(Exception):
    """The peer sent bytes that are not a frame of this protocol; the connection is unusable."""


class PeerClosed(FrameError):
    """The peer closed the connection; ``clean`` when that happened between two frames."""

    def __init__(self, message: str, clean: bool) -> None:
        super().__init__(message)
        self.clean = clean


def send_frame(
    sock: socket.socket, header: Header, payload: Any = None, fds: Sequence[int] = ()
) -> None:
    """Send one frame; ``payload`` is any contiguous bytes-like object (bytes, array, numpy).

    ``fds`` (Unix sockets only) go with the frame's first bytes; the caller still owns them.
    """
    body = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(body) > MAX_HEADER_BYTES:
        raise ValueError(f"frame header too large ({len(body)} bytes)")
    size = 0 if payload is None else memoryview(payload).nbytes
    head = PREFIX.pack(MAGIC, len(body), size) + body
    if fds:
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        sent = sock.sendmsg([head], rights)
        if sent < len(head):
            sock.sendall(head[sent:])
    else:
        sock.sendall(head)
    if size:
        sock.sendall(payload)


def close_fds(fds: list[int]) -> None:
    """Close every descriptor in ``fds`` and empty the list."""
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


def recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from the socket; a close before it is full is :class:`PeerClosed`."""
    got, total = 0, len(view)
    while got < total:
        count = sock.recv_into(view[got:], min(total - got, _CHUNK))
        if count == 0:
            raise PeerClosed("the connection closed in the middle of a frame", clean=False)
        got += count


def _recv_prefix(sock: socket.socket, prefix: bytearray, fds: list[int] | None) -> int:
    """The first bytes of a frame, and with them the descriptors it carries (into ``fds``)."""
    if fds is None or not _FD_ROOM:
        return sock.recv_into(prefix, len(prefix))  # the kernel closes any descriptors sent
    count, ancillary, flags, _ = sock.recvmsg_into([prefix], _FD_ROOM, _CLOEXEC)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            whole = len(data) - len(data) % array.array("i").itemsize
            fds.extend(array.array("i", data[:whole]))
    if flags & getattr(socket, "MSG_CTRUNC", 0):
        raise FrameError(f"too many file descriptors with one frame (at most {MAX_FDS})")
    return count


def read_header(sock: socket.socket, fds: list[int] | None = None) -> tuple[Header, int]:
    """Read a frame's prefix and header; returns the header and the payload length still unread.

    The payload is left on the socket so that the reader can check the header (and refuse an
    oversized payload) before allocating anything for it. With ``fds`` (a list), descriptors
    that came with the frame are appended to it, also when this raises: the caller closes them
    (:func:`close_fds`). Without it, the kernel closes any that came.
    """
    prefix = bytearray(PREFIX.size)
    first = _recv_prefix(sock, prefix, fds)
    if first == 0:
        raise PeerClosed("the connection closed", clean=True)
    recv_exact_into(sock, memoryview(prefix)[first:])
    magic, header_size, payload_size = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise FrameError("not a facecloak frame (bad magic bytes)")
    if header_size > MAX_HEADER_BYTES:
        raise FrameError(f"frame header too large ({header_size} > {MAX_HEADER_BYTES} bytes)")
    raw = bytearray(header_size)
    recv_exact_into(sock, memoryview(raw))
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FrameError("the frame header is not UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise FrameError("the frame header is not a JSON object")
    return header, payload_size


def read_payload(sock: socket.socket, size: int) -> bytearray:
    """Read ``size`` payload bytes (after :func:`read_header`) into a new buffer."""
    data = bytearray(size)
    recv_exact_into(sock, memoryview(data))
    return data


def error_header(request_id: object | None, code: str, message: str) -> Header:
    """The reply that fails one request; ``message`` is one line meant for the user."""
    text = " ".join(str(message).split()) or code
    return {
        "v": PROTOCOL_VERSION,
        "id": request_id,
        "type": "error",
        "error": {"code": code, "message": text},
    }
