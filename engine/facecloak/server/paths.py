"""Creating the server's folders so that only this user can use them."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFolderError(Exception):
    """A folder the server needs is not private to this user (one line, for the user)."""


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check it: a real folder, owned by this user, mode 0700.

    A folder of ours with looser permissions is tightened; one that is a symbolic link or that
    belongs to another user (someone squatting the name in /tmp) is refused.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as error:
        raise UnsafeFolderError(f"cannot create {path}: {error.strerror or error}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolderError(f"{path} is not a folder (a link or a file is in its place)")
    if info.st_uid != os.getuid():
        raise UnsafeFolderError(f"{path} belongs to user id {info.st_uid}, not to this user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path
