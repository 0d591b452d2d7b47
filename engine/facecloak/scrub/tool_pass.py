"""The exiftool path: delete everything, copy the ICC profile back, then chase leftovers.

``-all=`` cannot delete IFD0 of a TIFF (it holds the image), so a second pass deletes, by
name, whatever the read-back still finds there (GeoTIFF keys, for instance).
"""

from __future__ import annotations

import os
from pathlib import Path

from facecloak.scrub.allowlist import allowed
from facecloak.scrub.exiftool import ExifTool, ExifToolError

# Formats this path sends through exiftool.  exiftool 12.x cannot write WebP, BMP or PPM; GIF
# has a complete built-in filter (and exiftool fails to copy some GIF ICC profiles back).
WRITES = frozenset(("JPEG", "PNG", "TIFF", "HEIF", "AVIF"))

_FIRST_PASS = ("-m", "-all=", "-CommonIFD0=", "-trailer:all=", "-tagsfromfile", "@")
_GEOTIFF = ("-GeoTiffDirectory=", "-GeoTiffDoubleParams=", "-GeoTiffAsciiParams=")
_UNDELETABLE_GROUPS = ("File", "System", "Composite", "ExifTool")


def _error(stderr: str, default: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("Error"):
            return line.split(":", 1)[-1].split(" - ")[0].strip() or default
    return default


def strip(tool: ExifTool, source: Path, output: Path) -> None:
    """First pass: ``source`` to ``output`` without metadata, the ICC profile copied back."""
    _out, err = tool.execute(
        *_FIRST_PASS, "-ICC_Profile", "-o", os.fspath(output), os.fspath(source)
    )
    if not output.exists():
        raise ExifToolError(_error(err, "exiftool wrote no output"))


def delete_leftovers(tool: ExifTool, path: Path, fmt: str) -> bool:
    """Delete, by name, tags the first pass left; False when there was nothing to try."""
    args: list[str] = []
    for key, _value in tool.read_tags(os.fspath(path)):
        group, _, tag = key.partition(":")
        if allowed(fmt, key) or group in _UNDELETABLE_GROUPS:
            continue
        args.extend(_GEOTIFF if group == "GeoTiff" else (f"-{group}:{tag}=",))
    if not args:
        return False
    tool.execute("-m", "-overwrite_original", *dict.fromkeys(args), os.fspath(path))
    return True
