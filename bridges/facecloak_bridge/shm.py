"""Pixels through shared memory: sealed anonymous memory files passed over the Unix socket.

A 24-megapixel image is 72 MB; through the socket it is copied four times (into the kernel and
out again, each way). Instead the sender writes the pixels once into an anonymous memory file
(``memfd_create``), seals it (no more writes, no resizing) and passes its file descriptor with
the frame (``SCM_RIGHTS``); the receiver maps it. The server and the plug-ins' client both use
this module (standard library only, Python 3.8+). The protocol is in docs/protocol.md.

The seals are what make a received descriptor safe to map: a memory file that its sender could
still shrink would kill the reader with SIGBUS when it touches the lost pages. So only sealed
memory files are accepted, never plain files, pipes, sockets or folders.
"""

from __future__ import annotations

import mmap
import os
import socket
import stat
from typing import Any

try:
    import fcntl
except ImportError:  # not a Unix: no shared memory, frames only
    fcntl = None  # type: ignore[assignment]

FEATURE = "shm"  # the capability's name in the server's ``health``
_SEALED = 0
_SEAL_ALL = 0
if fcntl is not None and hasattr(fcntl, "F_ADD_SEALS"):
    # Fixed size and contents: exactly what a frame's payload would have been.
    _SEALED = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    _SEAL_ALL = _SEALED | fcntl.F_SEAL_SEAL
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Python 3.10+; only saves page faults


class ShmError(Exception):
    """A file descriptor that is not the sealed memory file of the right size it should be."""


def available() -> bool:
    """Whether this Python and system can create, seal and pass memory files."""
    return bool(
        _SEALED
        and hasattr(os, "memfd_create")
        and hasattr(os, "MFD_ALLOW_SEALING")
        and hasattr(socket, "SCM_RIGHTS")
        and hasattr(socket.socket, "sendmsg")
        and hasattr(socket.socket, "recvmsg_into")
        and hasattr(socket, "CMSG_SPACE")
    )


def memfd_from(buffer: Any, name: str = "facecloak-pixels") -> int:
    """A new sealed memory file holding a copy of ``buffer`` (any contiguous bytes-like object).

    The caller owns (and closes) the returned descriptor; ``OSError`` when the system refuses.
    """
    try:
        view = memoryview(buffer).cast("B")
    except TypeError:
        raise TypeError(
            "pixels must be one contiguous buffer (bytes, bytearray, a C-ordered numpy array)"
        ) from None
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        done, total = 0, view.nbytes
        while done < total:
            done += os.write(fd, view[done:])
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEAL_ALL)
    except BaseException:
        os.close(fd)
        raise
    return fd


def file_kind(mode: int) -> str:
    """What a non-regular file is, for error messages (the server's path checks use it too)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def check(fd: int, size: int, what: str = "the pixel file descriptor") -> None:
    """``fd`` must be a memory file sealed against writes and resizing, of exactly ``size``."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as error:
        raise ShmError(f"{what} is not usable ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        raise ShmError(f"{what} is {file_kind(mode)}, not a memory file (memfd)")
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        raise ShmError(f"{what} is not a memory file that can be sealed (memfd)") from None
    if seals & _SEALED != _SEALED:
        raise ShmError(f"{what} is not sealed against writing, shrinking and growing")
    actual = os.fstat(fd).st_size  # after the seals were seen: it cannot change any more
    if actual != size:
        raise ShmError(f"{what} holds {actual} bytes; stride x height is {size}")


def map_readonly(fd: int, size: int) -> mmap.mmap:
    """Map a checked memory file read-only (pages faulted in at once where the system can)."""
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)


def map_private(fd: int, size: int) -> mmap.mmap:
    """Map a checked memory file copy-on-write: a writable buffer that shares pages until written.

    (No MAP_POPULATE here: on a private writable mapping it would copy every page.)
    """
    return mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
