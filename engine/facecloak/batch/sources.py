"""Where a batch's inputs come from: folders (recursive, include/exclude) and list files.

Each input carries the path it should have under the destination (``relative``), so that the
output mirrors the source layout. Symbolic links are not followed: a link in a shared folder
must not pull in files from elsewhere on the disk.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class SourceError(Exception):
    """A source that cannot be read at all (missing folder, unreadable list file)."""


@dataclass(frozen=True)
class SourceFile:
    """One input file and where its output belongs, relative to the destination."""

    path: Path
    relative: PurePosixPath
    sidecar: Path | None = None  # darktable's XMP: the edits that develop a raw file
    note: str = ""  # why it will be skipped without being read (a link, say)


@dataclass(frozen=True)
class Filters:
    """Shell-style patterns matched against the file name and its path inside the source."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    hidden: bool = False  # dot-files and dot-folders (.git, .thumbnails) are left out

    def wants(self, relative: PurePosixPath) -> bool:
        if not self.hidden and any(part.startswith(".") for part in relative.parts):
            return False
        if self.include and not _matches(relative, self.include):
            return False
        return not _matches(relative, self.exclude)


def _matches(relative: PurePosixPath, patterns: Sequence[str]) -> bool:
    text = relative.as_posix()
    return any(
        fnmatch.fnmatchcase(relative.name, p) or fnmatch.fnmatchcase(text, p) for p in patterns
    )


def walk_folder(
    root: Path, filters: Filters, skip: Sequence[Path] = (), prefix: PurePosixPath | None = None
) -> Iterator[SourceFile]:
    """Every wanted file under ``root``, sorted, never entering a folder in ``skip`` (the
    destination, when it lies inside the source)."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder")
    base = prefix or PurePosixPath()
    skipped = {os.path.realpath(p) for p in skip}
    for folder, dirs, files in os.walk(root, onerror=_raise):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if os.path.realpath(here / d) not in skipped)
        for name in sorted(files):
            path = here / name
            relative = base / PurePosixPath(path.relative_to(root).as_posix())
            if not filters.wants(relative.relative_to(base)):
                continue
            note = "a symbolic link (not followed)" if path.is_symlink() else ""
            yield SourceFile(path, relative, sidecar=_sidecar(path), note=note)


def _raise(error: OSError) -> None:
    raise SourceError(f"{error.filename}: cannot read the folder ({error.strerror})")


def _sidecar(path: Path) -> Path | None:
    """darktable's sidecar (``IMG_1.CR2.xmp``), used only when the file is a raw one."""
    candidate = path.with_name(path.name + ".xmp")
    return candidate if candidate.is_file() else None


def read_list_file(list_file: Path) -> list[SourceFile]:
    """Files named one per line (``#`` comments, blank lines ignored); relative names are
    relative to the list file's folder. Outputs mirror the files' common folder."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{list_file}: cannot read the list file ({error})") from None
    paths = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry)
            paths.append(path if path.is_absolute() else list_file.parent / path)
    return mirror(paths)


def mirror(paths: Sequence[Path]) -> list[SourceFile]:
    """Files from anywhere, laid out under the destination as under their common folder."""
    if not paths:
        return []
    absolute = [Path(os.path.abspath(p)) for p in paths]
    common = Path(os.path.commonpath([p.parent for p in absolute]))
    return [
        SourceFile(p, PurePosixPath(p.relative_to(common).as_posix()), sidecar=_sidecar(p))
        for p in absolute
    ]
