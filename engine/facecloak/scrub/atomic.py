"""Put the scrubbed bytes in place atomically, with the same rules as ``imageio.save_image``.

The destination checks and the final move are imageio's own (one implementation of "never
replace an input, never replace an output unless allowed, never leave half a file").
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from facecloak.imageio import ImageError, _check_destination, _fsync_dir, _move_into_place, _umask
from facecloak.scrub.errors import ScrubError


def check_destination(dest: Path, *, overwrite: bool, protect: list[Path]) -> None:
    """Fail early (before any work) when ``dest`` cannot or must not be written."""
    if not dest.parent.is_dir():
        raise ScrubError(dest, f"the output folder {dest.parent} does not exist")
    try:
        _check_destination(dest, overwrite=overwrite, protect=protect)
    except ImageError as exc:
        raise ScrubError(dest, str(exc).split(": ", 1)[-1]) from None


def write_atomically(
    data: bytes, dest: Path, *, overwrite: bool, protect: list[Path], mode: int | None = None
) -> None:
    """Write ``data`` to a temporary file beside ``dest``, fsync, then move it into place."""
    check_destination(dest, overwrite=overwrite, protect=protect)
    try:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".facecloak-", suffix=".tmp")
    except OSError as exc:
        raise ScrubError(dest, f"cannot create a file in the output folder ({exc})") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        check_destination(dest, overwrite=overwrite, protect=protect)
        _move_into_place(tmp, dest, overwrite=overwrite)
        _fsync_dir(dest.parent)
    except ImageError as exc:
        raise ScrubError(dest, str(exc).split(": ", 1)[-1]) from None
    except OSError as exc:
        raise ScrubError(dest, f"cannot write the output ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
