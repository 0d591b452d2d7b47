"""Raw files, developed by darktable: its edits (the XMP sidecar) applied by ``darktable-cli``
into a 16-bit TIFF in a private temporary folder, which is then cloaked like any photo.

Each call gets its own empty configuration folder and an in-memory library, so it never reads
or changes the user's darktable set-up or catalog, and parallel calls do not share a lock.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

_RAW_NAMES = "3fr ari arw cr2 cr3 crw dcr dng erf fff iiq k25 kdc mdc mef mos mrw nef nrw orf pef"
RAW_EXTENSIONS = frozenset(
    f".{name}" for name in f"{_RAW_NAMES} raf raw rw2 rwl sr2 srf srw x3f".split()
)
TIMEOUT_S = 600


class DevelopError(Exception):
    """darktable could not develop the file (one line)."""


def is_raw(path: Path) -> bool:
    return path.suffix.lower() in RAW_EXTENSIONS


def darktable_cli() -> str | None:
    """The ``darktable-cli`` program, or ``None`` when darktable is not installed."""
    return shutil.which("darktable-cli")


def develop(source: Path, sidecar: Path | None, work: Path) -> Path:
    """Export ``source`` with its darktable edits to ``work/developed.tif``; returns that path.

    ``work`` must be an empty private folder (the caller removes it).
    """
    program = darktable_cli()
    if program is None:
        raise DevelopError(
            f"{source}: a raw file needs darktable to develop it, and darktable-cli is not "
            "installed (apt-get install darktable)"
        )
    output = work / "developed.tif"
    config = Path(tempfile.mkdtemp(prefix="dtconf-", dir=work))
    command = [program, str(source)]
    if sidecar is not None:
        command.append(str(sidecar))
    command += [
        str(output), "--hq", "true", "--core", "--configdir", str(config),
        "--library", ":memory:", "--conf", "write_sidecar_files=never",
        "--conf", "plugins/imageio/format/tiff/bpp=16",
        "--conf", "plugins/imageio/format/tiff/compress=0",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise DevelopError(f"{source}: darktable-cli took longer than {TIMEOUT_S} s") from None
    except OSError as error:
        raise DevelopError(f"{source}: cannot run darktable-cli ({error.strerror})") from None
    if done.returncode != 0 or not output.is_file():
        why = _reason(done.stdout + "\n" + done.stderr) or f"exit code {done.returncode}"
        raise DevelopError(f"{source}: darktable-cli could not develop it ({why})")
    return output


def _reason(text: str) -> str:
    """darktable's first line that says what went wrong (its root warning says nothing)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if "running darktable as root" not in ln]
    for line in lines:
        if line.startswith("[rawspeed]") or "error" in line.lower():
            return line[:200]
    return lines[-1][:200] if lines else ""
