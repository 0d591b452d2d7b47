"""``check_file``: list the identifying metadata a file carries, without changing it.

exiftool reads the file when it is installed (it knows thousands of tags); otherwise Pillow
gives a shorter answer (EXIF, GPS, XMP, IPTC, comments and text chunks).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

from facecloak.scrub.allowlist import allowed
from facecloak.scrub.classify import classify, short
from facecloak.scrub.errors import ScrubError
from facecloak.scrub.exiftool import ExifTool, ExifToolError, shared
from facecloak.scrub.formats import Refused, detect
from facecloak.scrub.report import Finding
from facecloak.scrub.source import read_source
from facecloak.scrub.words import words


def exiftool_findings(tool: ExifTool, path: Path, fmt: str) -> list[Finding]:
    """Every tag exiftool reads that the format's allowlist does not name."""
    tags = tool.read_tags(os.fspath(path))
    return [
        Finding(key, short(value), classify(key)) for key, value in tags if not allowed(fmt, key)
    ]


_HARMLESS_INFO = words(
    "icc_profile jfif jfif_version jfif_unit jfif_density dpi progressive progression adobe"
    " adobe_transform gamma srgb chromaticity transparency background interlace duration loop"
    " version aspect compression bbox extension"
)


# TIFF tags that describe the image itself (Pillow lists them with the EXIF of a TIFF).
_STRUCTURAL_TAGS = frozenset(
    int(tag)
    for tag in words(
        "254 256 257 258 259 262 273 274 277 278 279 282 283 284 296 301 317 318 319 320 322"
        " 323 324 325 338 339 347 530 531 532 34675"
    )
)


def pillow_findings(path: Path) -> list[Finding]:
    """A shorter list from Pillow, for machines without exiftool."""
    from PIL import ExifTags, Image

    found: list[Finding] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(path)
        except Exception as exc:
            raise ScrubError(path, f"cannot read the file ({short(exc)})") from None
        with img:
            for key, value in img.info.items():
                if key not in _HARMLESS_INFO and key != "exif":
                    found.append(Finding(f"Pillow:{key}", short(value), classify(key)))
            exif = None
            with contextlib.suppress(Exception):
                exif = img.getexif()
            for tag, value in (exif or {}).items():
                name = ExifTags.TAGS.get(tag, f"0x{tag:04x}")
                if tag not in _STRUCTURAL_TAGS:
                    found.append(Finding(f"EXIF:{name}", short(value), classify(name)))
    return found


def check_file(path: str | os.PathLike[str], *, exiftool: ExifTool | None = None) -> list[Finding]:
    """What identifying metadata ``path`` carries (an empty list: nothing found)."""
    source = Path(path)
    data = read_source(source)
    try:
        fmt = detect(source, data)
    except Refused:
        fmt = "OTHER"  # reading is safe for any file, raw ones included
    tool = exiftool or shared()
    if not tool.available:
        return pillow_findings(source)
    try:
        return exiftool_findings(tool, source, fmt)
    except ExifToolError as exc:
        raise ScrubError(source, f"exiftool cannot read the file ({exc})") from None
