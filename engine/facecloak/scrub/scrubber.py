"""``scrub_file``: one photo in, one clean photo out, losslessly where the format allows.

Order of work: read and identify the input (raw files refused), copy it into a private
working folder, strip it (exiftool, then the built-in segment filter; or the fallbacks),
read the result back and refuse to write it if anything outside the allowlist is left, then
move it into place atomically.  The input is never changed unless ``in_place=True``.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

from facecloak.imageio import ImageError, _same_file
from facecloak.scrub import pillow_pass, tool_pass
from facecloak.scrub.atomic import check_destination, write_atomically
from facecloak.scrub.builtin import FILTERS
from facecloak.scrub.check import exiftool_findings, pillow_findings
from facecloak.scrub.errors import ScrubError
from facecloak.scrub.exiftool import ExifTool, ExifToolError, shared
from facecloak.scrub.formats import EXTENSIONS, Refused, detect, suffix_mismatch
from facecloak.scrub.report import Finding, ScrubReport
from facecloak.scrub.sidecars import ACTIONS, delete_sidecars, find_sidecars
from facecloak.scrub.source import read_source

_NO_TOOL = "exiftool not found: used the built-in fallback"


def _destination(source: Path, destination, in_place: bool) -> Path:
    if in_place:
        if destination is not None and not _same_file(Path(destination), source):
            raise ScrubError(source, "an in-place scrub writes over the input; give no output")
        return Path(os.path.realpath(source))  # replace the file, not a symlink to it
    if destination is None:
        raise ScrubError(source, "no output given (name one, or ask for an in-place scrub)")
    dest = Path(destination)
    if _same_file(dest, source):
        raise ScrubError(dest, "refusing to write over the input file; use --in-place for that")
    return dest


def _clean(fmt: str, data: bytes, work: Path, tool: ExifTool) -> tuple[bytes, str, list[str]]:
    """(clean bytes, method, notes) for the copy of the input at ``work/in.EXT``."""
    ext = EXTENSIONS[fmt]
    source, output = work / f"in{ext}", work / f"out{ext}"
    notes: list[str] = []
    if tool.available and fmt in tool_pass.WRITES:
        tool_pass.strip(tool, source, output)
        data_out, method = output.read_bytes(), "exiftool"
    elif fmt in FILTERS:
        data_out, method = data, "builtin"
        if not tool.available and fmt in tool_pass.WRITES:
            notes.append(_NO_TOOL)
    elif fmt in ("BMP", "PPM", "TIFF"):
        pillow_pass.rewrite(source, output, fmt)
        notes.append("rewritten from its pixels (a lossless format: pixel values unchanged)")
        if fmt == "TIFF":
            notes.append(_NO_TOOL + " (Pillow)")
        return output.read_bytes(), "pillow", notes
    else:
        raise ValueError(f"{fmt} needs exiftool for a lossless scrub (libimage-exiftool-perl)")
    if fmt in FILTERS:
        read_orientation, clean = FILTERS[fmt]
        data_out = clean(data_out, read_orientation(data))
    return data_out, method, notes


def _reason(exc: Exception) -> str:
    """The useful part of an error raised while working on the private copy."""
    if isinstance(exc, ScrubError):
        return exc.reason
    if isinstance(exc, ImageError):
        return str(exc).split(": ", 1)[-1]
    if isinstance(exc, (ExifToolError, ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _leftovers(fmt: str, path: Path, tool: ExifTool) -> list[Finding]:
    if tool.available:
        found = exiftool_findings(tool, path, fmt)
        if found and fmt in tool_pass.WRITES and tool_pass.delete_leftovers(tool, path, fmt):
            found = exiftool_findings(tool, path, fmt)
        return found
    return pillow_findings(path)


def scrub_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    in_place: bool = False,
    sidecars: str = "report",
    exiftool: ExifTool | None = None,
) -> ScrubReport:
    """Scrub ``source`` into ``destination`` (or over itself with ``in_place=True``).

    Raises :class:`ScrubError` (one line, naming the file) for anything it cannot do; then
    nothing has been written and the input is untouched.
    """
    started = time.perf_counter()
    if sidecars not in ACTIONS:
        raise ValueError(f"sidecars must be one of {ACTIONS}, not {sidecars!r}")
    src = Path(source)
    dest = _destination(src, destination, in_place)
    protect = [] if in_place else [src]
    check_destination(dest, overwrite=overwrite or in_place, protect=protect)
    data = read_source(src)
    try:
        fmt = detect(src, data)
    except Refused as exc:
        raise ScrubError(src, str(exc)) from None
    mismatch = suffix_mismatch(fmt, src, dest)
    if mismatch is not None:
        raise ScrubError(dest, mismatch)
    tool = exiftool or shared()
    with tempfile.TemporaryDirectory(prefix="facecloak-scrub-") as folder:
        work = Path(folder)
        copy = work / f"in{EXTENSIONS[fmt]}"
        copy.write_bytes(data)
        try:
            if tool.available:
                removed = exiftool_findings(tool, copy, fmt)
            else:
                removed = pillow_findings(copy)
            cleaned, method, notes = _clean(fmt, data, work, tool)
            final = work / f"final{EXTENSIONS[fmt]}"
            final.write_bytes(cleaned)
            left = _leftovers(fmt, final, tool)
            cleaned = final.read_bytes()
        except Exception as exc:  # a malformed file must end in a clean error, never a crash
            raise ScrubError(src, f"cannot scrub this {fmt} file ({_reason(exc)})") from None
    if left:
        tags = ", ".join(item.tag for item in left[:6])
        raise ScrubError(src, f"metadata would be left after scrubbing ({tags}); nothing written")
    mode = stat.S_IMODE(os.stat(src).st_mode) if in_place else None
    write_atomically(cleaned, dest, overwrite=overwrite or in_place, protect=protect, mode=mode)
    report = ScrubReport(
        source=os.fspath(src), destination=os.fspath(dest), format=fmt, method=method,
        lossless=method != "pillow", removed=removed, notes=notes,
        orientation=FILTERS[fmt][0](data) if fmt in FILTERS else 1,
    )  # fmt: skip
    found = find_sidecars(src)
    report.sidecars = [os.fspath(path) for path in found]
    if found and sidecars == "delete":
        report.sidecars_deleted = [os.fspath(path) for path in delete_sidecars(found)]
    elif found and sidecars == "report":
        report.notes.append(f"{len(found)} XMP sidecar(s) still hold metadata (--sidecars)")
    report.seconds = time.perf_counter() - started
    return report
