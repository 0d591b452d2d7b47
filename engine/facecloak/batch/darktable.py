"""darktable's catalog (``library.db`` and its tag names in ``data.db``), read and never changed.

Opened through SQLite URIs with ``mode=ro``; ``immutable=1`` too (no locks, no journal files
created) when no darktable is running on it, i.e. its ``.lock`` file is absent or names a dead
process. Images are selected by film roll, tag, rating, colour label and date taken; each one
becomes a source whose output mirrors its film roll's folder under the folder common to all
film rolls (duplicates get ``_NN`` names, as darktable's own exports do).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from facecloak.batch.sources import SourceError, SourceFile

COLOURS = {"red": 0, "yellow": 1, "green": 2, "blue": 3, "purple": 4}
_EPOCH = dt.datetime(1, 1, 1)  # darktable 4 stores times as microseconds since year 1
_REJECTED = 0x8


@dataclass(frozen=True)
class Selection:
    """Which catalog images to take; empty criteria select everything but rejected images."""

    film_rolls: Sequence[str] = ()  # folder paths, or their last component
    tags: Sequence[str] = ()  # a tag takes its sub-tags too: "people" takes "people|anna"
    min_rating: int | None = None
    colours: Sequence[str] = field(default_factory=tuple)
    taken_from: dt.date | None = None
    taken_until: dt.date | None = None  # inclusive


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open a darktable database so that nothing about it can change."""
    if not path.is_file():
        raise SourceError(f"{path}: no such darktable database")
    quoted = urllib.parse.quote(os.path.abspath(path))
    immutable = "&immutable=1" if not _in_use(path) else ""
    try:
        connection = sqlite3.connect(f"file:{quoted}?mode=ro{immutable}", uri=True)
        connection.execute("PRAGMA query_only = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        raise SourceError(f"{path}: cannot read the darktable database ({error})") from None
    return connection


def _in_use(path: Path) -> bool:
    """darktable writes its pid into ``library.db.lock`` while it has the catalog open."""
    lock = path.with_name(path.name + ".lock")
    try:
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return lock.exists()  # unreadable lock: assume a live darktable
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def select(library: Path, selection: Selection, data: Path | None = None) -> list[SourceFile]:
    """The selected images as sources, in film-roll then file-name order."""
    data = data or library.with_name("data.db")
    connection = connect_read_only(library)
    try:
        rows = _query(connection, selection, _tag_ids(data, selection.tags))
        rolls = [row[0] for row in connection.execute("SELECT folder FROM film_rolls")]
    except sqlite3.Error as error:
        raise SourceError(f"{library}: not a darktable library ({error})") from None
    finally:
        connection.close()
    rows = [row for row in rows if _wanted_roll(row[0], selection.film_rolls)]
    if not rows:
        return []
    # Laid out under the folder common to every film roll, so that batches of different
    # selections into one destination agree on where each image goes.
    common = os.path.commonpath([str(folder) for folder in rolls])
    sources = []
    for folder, filename, version in rows:
        path = Path(folder) / filename
        relative = PurePosixPath(Path(folder).relative_to(common).as_posix()) / filename
        if version:
            relative = relative.with_name(f"{path.stem}_{version:02d}{path.suffix}")
        sources.append(SourceFile(path, relative, sidecar=_sidecar(path, version)))
    return sources


def _tag_ids(data: Path, tags: Sequence[str]) -> list[int] | None:
    if not tags:
        return None
    connection = connect_read_only(data)
    try:
        ids = []
        for tag in tags:
            found = connection.execute(
                "SELECT id FROM tags WHERE name = ? OR name LIKE ? ESCAPE '\\'",
                (tag, _like_prefix(tag) + "|%"),
            ).fetchall()
            ids += [row[0] for row in found]
        return ids
    except sqlite3.Error as error:
        raise SourceError(f"{data}: not a darktable data.db ({error})") from None
    finally:
        connection.close()


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _query(
    connection: sqlite3.Connection, selection: Selection, tag_ids: list[int] | None
) -> list[tuple[str, str, int]]:
    where = [f"(i.flags & {_REJECTED}) = 0"]
    values: list[object] = []
    if tag_ids is not None:
        marks = ",".join("?" * len(tag_ids)) or "NULL"
        where.append(f"i.id IN (SELECT imgid FROM tagged_images WHERE tagid IN ({marks}))")
        values += tag_ids
    if selection.min_rating is not None:
        where.append("(i.flags & 7) >= ?")
        values.append(selection.min_rating)
    if selection.colours:
        codes = [COLOURS[c] for c in selection.colours]
        marks = ",".join("?" * len(codes))
        where.append(f"i.id IN (SELECT imgid FROM color_labels WHERE color IN ({marks}))")
        values += codes
    if selection.taken_from is not None:
        where.append("i.datetime_taken >= ?")
        values.append(_microseconds(selection.taken_from))
    if selection.taken_until is not None:
        where.append("i.datetime_taken < ?")
        values.append(_microseconds(selection.taken_until + dt.timedelta(days=1)))
    sql = (
        "SELECT f.folder, i.filename, i.version FROM images i "
        "JOIN film_rolls f ON f.id = i.film_id WHERE " + " AND ".join(where) + " "
        "ORDER BY f.folder, i.filename, i.version"
    )
    return [(str(a), str(b), int(c or 0)) for a, b, c in connection.execute(sql, values)]


def _microseconds(day: dt.date) -> int:
    moment = dt.datetime(day.year, day.month, day.day)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def _wanted_roll(folder: str, rolls: Sequence[str]) -> bool:
    if not rolls:
        return True
    normal = os.path.normpath(folder)
    return any(
        normal == os.path.normpath(roll) or os.path.basename(normal) == roll for roll in rolls
    )


def _sidecar(path: Path, version: int) -> Path | None:
    """darktable's sidecar names: ``IMG.CR2.xmp``, then ``IMG_01.CR2.xmp`` for duplicates."""
    name = f"{path.name}.xmp" if not version else f"{path.stem}_{version:02d}{path.suffix}.xmp"
    candidate = path.with_name(name)
    with contextlib.suppress(OSError):
        if candidate.is_file():
            return candidate
    return None
