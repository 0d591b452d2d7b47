"""Reading the input: a regular, non-empty file of sane size, read once into memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from facecloak.scrub.errors import ScrubError

MAX_BYTES = 1 << 30  # 1 GiB: no photo is larger, and the file is held in memory


def read_source(path: Path) -> bytes:
    """The file's bytes, or a one-line :class:`ScrubError` saying why not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ScrubError(path, "file not found") from None
    except PermissionError:
        raise ScrubError(path, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise ScrubError(path, f"cannot access the file ({exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ScrubError(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ScrubError(path, "is not a regular file")
    if st.st_size == 0:
        raise ScrubError(path, "the file is empty")
    if st.st_size > MAX_BYTES:
        raise ScrubError(path, f"the file is too large ({st.st_size:,} bytes)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise ScrubError(path, "permission denied (cannot read the file)") from None
    except OSError as exc:
        raise ScrubError(path, f"cannot open the file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ScrubError(path, "is not a regular file")
        return fh.read(MAX_BYTES + 1)
