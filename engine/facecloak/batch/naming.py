"""Where each output goes: the source layout mirrored under the destination, renamed by a
pattern, and never outside the destination whatever names the sources (or a catalog) carry."""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from facecloak.batch.settings import FORMATS
from facecloak.imageio import WRITE_EXTENSIONS

DEFAULT_PATTERN = "{stem}{ext}"
FIELDS = {"stem", "ext", "name", "suffix"}
_FORMAT_EXT = {"jpeg": ".jpg", "png": ".png"}
MANIFEST_NAME = ".facecloak-batch.jsonl"


class NamingError(Exception):
    """A naming pattern or a destination that cannot be used."""


def check_pattern(pattern: str) -> str:
    """Refuse a pattern that could name a folder, escape the destination or is malformed."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as error:
        raise NamingError(f"naming pattern {pattern!r}: {error}") from None
    unknown = names - FIELDS
    if unknown:
        raise NamingError(
            f"naming pattern {pattern!r}: unknown field(s) {', '.join(sorted(unknown))} "
            f"(use {', '.join('{' + f + '}' for f in sorted(FIELDS))})"
        )
    if "/" in pattern or "\\" in pattern or "\0" in pattern:
        raise NamingError(f"naming pattern {pattern!r} must not contain a path separator")
    return pattern


def output_extension(source: Path, output_format: str) -> str:
    """``same``: the source's own extension when the engine can write it, else ``.png``
    (GIF, PPM, AVIF and developed raw files: PNG keeps 16 bits and alpha). ``own``: the
    source's extension whatever it is (scrubbing keeps the file's format)."""
    if output_format == "own":
        return source.suffix
    if output_format not in FORMATS:
        raise NamingError(f"unknown output format {output_format!r} (choose {FORMATS})")
    if output_format != "same":
        return _FORMAT_EXT[output_format]
    suffix = source.suffix.lower()
    return suffix if suffix in WRITE_EXTENSIONS else ".png"


def output_relative(relative: PurePosixPath, source: Path, pattern: str, fmt: str) -> PurePosixPath:
    """The output's path inside the destination, checked part by part."""
    ext = output_extension(source, fmt)
    name = pattern.format(
        stem=relative.stem, ext=ext, name=relative.name, suffix=relative.suffix.lstrip(".")
    )
    if not name.lower().endswith(ext):
        name += ext
    result = relative.parent / name
    for part in result.parts:
        _check_part(part, relative)
    return result


def _check_part(part: str, relative: PurePosixPath) -> None:
    if part in ("", ".", "..") or part.startswith("/") or "\\" in part:
        raise NamingError(f"{relative}: unsafe path component {part!r}")
    if any(not ch.isprintable() for ch in part):
        raise NamingError(f"{relative}: control characters in a path component")
    if part == MANIFEST_NAME:
        raise NamingError(f"{relative}: would overwrite the batch manifest")


def unique(paths: Sequence[PurePosixPath]) -> list[PurePosixPath]:
    """Give outputs that would collide (``a.png`` and ``a.jpg`` both to ``a.jpg``) a numbered
    suffix, in input order, so no output overwrites another."""
    seen: set[str] = set()
    result = []
    for path in paths:
        candidate, number = path, 1
        while candidate.as_posix().lower() in seen:
            number += 1
            candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        seen.add(candidate.as_posix().lower())
        result.append(candidate)
    return result


def place(destination: Path, relative: PurePosixPath) -> Path:
    """The absolute output path, its folders created; refuses one that a symbolic link inside
    the destination would send elsewhere."""
    target = destination.joinpath(*relative.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(destination)
    folder = os.path.realpath(target.parent)
    if os.path.commonpath([root, folder]) != root:
        raise NamingError(f"{relative}: its folder leads outside the destination (a link?)")
    if os.path.islink(target):
        raise NamingError(f"{relative}: the output path is a symbolic link")
    return target
