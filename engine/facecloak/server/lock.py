"""One server per user: an exclusive ``flock`` on a file in the runtime folder.

The kernel drops the lock when the process dies, however it dies, so a crashed server never
blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class InstanceLock:
    """Held for the server's lifetime; the file holds the owner's process id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; ``False`` when another live server holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The process id written by the server that holds the lock, when readable."""
        with contextlib.suppress(OSError, ValueError):
            return int(self.path.read_text().strip())
        return None

    def release(self) -> None:
        # The file stays: unlinking it would let a new server lock a fresh file while a late
        # starter still locks the old one, and then both would run.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
