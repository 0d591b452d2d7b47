"""Batch building blocks without the models: sources, naming, manifest, catalog, command line."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from facecloak.batch import darktable
from facecloak.batch.manifest import Manifest, ManifestError, fingerprint
from facecloak.batch.naming import (
    NamingError,
    check_pattern,
    output_relative,
    place,
    unique,
)
from facecloak.batch.runner import plan, record_result, record_start
from facecloak.batch.settings import BatchSettings
from facecloak.batch.sources import Filters, SourceFile, read_list_file, walk_folder
from facecloak.batch.work import FileResult, Planned
from facecloak.budget import budget_for
from facecloak.cli import main
from PIL import Image

SETTINGS = BatchSettings(budget_for("low"))


def _tree(root: Path) -> None:
    for name in ("a.jpg", "b.png", "sub/c.jpg", "sub/deep/d.JPG", ".hidden/e.jpg", "f.txt"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_walk_include_exclude_hidden_and_destination(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.jpg").write_bytes(b"x")
    names = lambda filters: [s.relative.as_posix() for s in walk_folder(  # noqa: E731
        tmp_path, filters, skip=[tmp_path / "out"])]  # fmt: skip
    assert names(Filters()) == ["a.jpg", "b.png", "f.txt", "sub/c.jpg", "sub/deep/d.JPG"]
    assert names(Filters(include=["*.jpg"])) == ["a.jpg", "sub/c.jpg"]
    assert names(Filters(include=["*.jpg", "*.JPG"], exclude=["sub/deep/*"])) == [
        "a.jpg",
        "sub/c.jpg",
    ]
    assert ".hidden/e.jpg" in names(Filters(hidden=True))


def test_walk_does_not_follow_links(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (tmp_path / "src" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (tmp_path / "src" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    found = list(walk_folder(tmp_path / "src", Filters()))
    assert [s.relative.as_posix() for s in found] == ["link.jpg"]
    assert "symbolic link" in found[0].note


def test_list_file_mirrors_common_folder(tmp_path: Path) -> None:
    _tree(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# chosen\nsub/c.jpg\n\n{tmp_path / 'sub/deep/d.JPG'}\n")
    found = read_list_file(listing)
    assert [s.relative.as_posix() for s in found] == ["c.jpg", "deep/d.JPG"]


def test_naming_patterns_formats_and_collisions() -> None:
    rel = PurePosixPath("album/IMG 1.PNG")
    assert output_relative(rel, Path("x/IMG 1.PNG"), "{stem}{ext}", "same").as_posix() == (
        "album/IMG 1.png"
    )
    assert output_relative(rel, Path("x.PNG"), "{stem}-cloaked{ext}", "jpeg").name == (
        "IMG 1-cloaked.jpg"
    )
    assert output_relative(PurePosixPath("a.gif"), Path("a.gif"), "{stem}{ext}", "same").name == (
        "a.png"
    )
    outs = unique([PurePosixPath("a.jpg"), PurePosixPath("A.jpg"), PurePosixPath("a.jpg")])
    assert [o.as_posix() for o in outs] == ["a.jpg", "A-2.jpg", "a-3.jpg"]
    for bad in ("../{stem}{ext}", "{stem}/{ext}", "{nope}", "{stem"):
        with pytest.raises(NamingError):
            check_pattern(bad)


def test_hostile_names_stay_inside_destination(tmp_path: Path) -> None:
    with pytest.raises(NamingError):
        output_relative(PurePosixPath("../etc/passwd.png"), Path("p.png"), "{stem}{ext}", "same")
    with pytest.raises(NamingError):
        output_relative(PurePosixPath("a\x1b[2J.png"), Path("p.png"), "{stem}{ext}", "same")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "escape").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(NamingError, match="outside the destination"):
        place(dest, PurePosixPath("escape/x.png"))
    assert place(dest, PurePosixPath("new/x.png")) == dest / "new" / "x.png"


def test_manifest_resume_lock_and_torn_line(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(b"pixels")
    dest = tmp_path / "out"
    dest.mkdir()
    item = Planned(SourceFile(source, PurePosixPath("in.png")), "in.png", dest / "in.png", False)
    printed = fingerprint(source)
    with Manifest(dest) as manifest:
        with pytest.raises(ManifestError, match="another batch"):
            Manifest(dest)
        record_start(manifest, item, SETTINGS)
        assert "in.png" in manifest.owned and "in.png" not in manifest.done
        result = FileResult(str(source), "in.png", "cloaked", faces=1, cloaked=1)
        result.sha256, result.size, result.mtime_ns = printed.sha256, printed.size, printed.mtime_ns
        record_result(manifest, item, result, SETTINGS)
    (dest / "in.png").write_bytes(b"output")
    with (dest / ".facecloak-batch.jsonl").open("ab") as fh:
        fh.write(b'{"v": 1, "event": "start", "out": "in.p')  # a SIGKILL mid-line
    with Manifest(dest) as manifest:
        options = SETTINGS.fingerprint()
        assert manifest.finished("in.png", source, None, options)
        assert not manifest.finished("in.png", source, None, "other-options")
        os.utime(source, ns=(1, 1))  # touched, same content: still finished
        assert manifest.finished("in.png", source, None, options)
        source.write_bytes(b"changed")
        assert not manifest.finished("in.png", source, None, options)
        manifest.append("start", "next.png")
    lines = (dest / ".facecloak-batch.jsonl").read_bytes().splitlines()
    assert json.loads(lines[-1])["out"] == "next.png"


def test_plan_skips_finished_and_marks_owned(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "src" / name)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "b.png").write_bytes(b"someone else's")
    sources = list(walk_folder(tmp_path / "src", Filters()))
    with Manifest(dest) as manifest:
        first = plan(sources, dest, manifest, SETTINGS, "{stem}{ext}")
        assert [(p.out, p.overwrite) for p in first.todo] == [("a.png", False), ("b.png", False)]
        record_start(manifest, first.todo[0], SETTINGS)
        again = plan(sources, dest, manifest, SETTINGS, "{stem}{ext}")
        assert [(p.out, p.overwrite) for p in again.todo] == [("a.png", True), ("b.png", False)]


def _catalog(folder: Path) -> Path:
    """A minimal darktable 4 schema (the real-darktable test checks the real one)."""
    library = folder / "library.db"
    with sqlite3.connect(library) as db:
        db.executescript(
            "CREATE TABLE film_rolls (id INTEGER PRIMARY KEY, access_timestamp INTEGER,"
            " folder VARCHAR);"
            "CREATE TABLE images (id INTEGER PRIMARY KEY, film_id INTEGER, filename VARCHAR,"
            " flags INTEGER, version INTEGER, datetime_taken INTEGER);"
            "CREATE TABLE tagged_images (imgid INTEGER, tagid INTEGER, position INTEGER);"
            "CREATE TABLE color_labels (imgid INTEGER, color INTEGER);"
            "INSERT INTO film_rolls VALUES (1, 0, '/photos/2024/party'), (2, 0, '/photos/trip');"
        )
        day = darktable._microseconds
        rows = [
            (1, 1, "a.jpg", 4, 0, day(dt.date(2024, 5, 1))),
            (2, 1, "a.jpg", 2, 1, day(dt.date(2024, 5, 1))),
            (3, 2, "b.nef", 1 | 8, 0, day(dt.date(2023, 1, 1))),  # rejected
            (4, 2, "c.jpg", 5, 0, day(dt.date(2023, 1, 2))),
        ]
        db.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO tagged_images VALUES (?, ?, 0)", [(1, 10), (4, 11)])
        db.execute("INSERT INTO color_labels VALUES (4, 0)")
    with sqlite3.connect(folder / "data.db") as db:
        db.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR)")
        db.executemany("INSERT INTO tags VALUES (?, ?)", [(10, "people|anna"), (11, "people_x")])
    return library


def test_catalog_selection_read_only(tmp_path: Path) -> None:
    library = _catalog(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pick = lambda **kw: [s.relative.as_posix() for s in darktable.select(  # noqa: E731
        library, darktable.Selection(**kw))]  # fmt: skip
    assert pick() == ["2024/party/a.jpg", "2024/party/a_01.jpg", "trip/c.jpg"]
    assert pick(tags=["people"]) == ["2024/party/a.jpg"]  # not "people_x": _ is no wildcard
    assert pick(film_rolls=["trip"]) == ["trip/c.jpg"]
    assert pick(min_rating=3) == ["2024/party/a.jpg", "trip/c.jpg"]
    assert pick(colours=["red"]) == ["trip/c.jpg"]
    assert pick(taken_from=dt.date(2024, 1, 1)) == ["2024/party/a.jpg", "2024/party/a_01.jpg"]
    assert pick(taken_until=dt.date(2023, 12, 31)) == ["trip/c.jpg"]
    assert pick(tags=["nobody"]) == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written


def test_command_line_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "src").mkdir()
    cases = [
        ["batch", "-d", str(tmp_path / "o")],
        ["batch", str(tmp_path / "src"), "-d", str(tmp_path / "src")],
        ["batch", str(tmp_path / "src"), "-d", str(tmp_path / "o"), "--name", "../{stem}"],
        ["batch", str(tmp_path / "src"), "-d", str(tmp_path / "o"), "--tag", "x"],
        ["batch", str(tmp_path / "nope"), "-d", str(tmp_path / "o")],
        ["batch", str(tmp_path / "src"), "-d", str(tmp_path / "o"), "--jobs", "0"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("facecloak: error:"), err
    assert main(["batch", str(tmp_path / "src"), "-d", str(tmp_path / "o")]) == 1
    assert "nothing selected" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    Image.new("RGB", (8, 8)).save(tmp_path / "src" / "a.png")
    assert main(["batch", str(tmp_path / "src"), "-d", str(tmp_path / "o"), "--models", "x"]) == 1
    err = capsys.readouterr().err
    known = "dlib, facenet, hse, sface"
    assert err == f"facecloak: error: unknown recogniser 'x' (known: {known})\n", err
    assert not (tmp_path / "o" / "a.png").exists()


def test_no_cloak_scrubs_and_keeps_pixels(tmp_path: Path) -> None:
    pytest.importorskip("facecloak.scrub")
    from facecloak.scrub import check_file

    src = tmp_path / "src"
    src.mkdir()
    pixels = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    Image.fromarray(pixels).save(src / "p.png", exif=exif)
    assert check_file(src / "p.png")
    assert main(["batch", str(src), "-d", str(tmp_path / "o"), "--no-cloak", "--jobs", "1"]) == 0
    out = tmp_path / "o" / "p.png"
    assert np.array_equal(np.asarray(Image.open(out)), pixels)
    assert check_file(out) == []


def test_several_sources_each_get_a_folder(tmp_path: Path) -> None:
    pytest.importorskip("facecloak.scrub")
    for folder in ("one/album", "two/album"):
        (tmp_path / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "x.png")
    (tmp_path / "single.png").write_bytes((tmp_path / "one/album/x.png").read_bytes())
    argv = [str(tmp_path / "one/album"), str(tmp_path / "two/album"), str(tmp_path / "single.png")]
    assert main(["batch", *argv, "-d", str(tmp_path / "out"), "--no-cloak"]) == 0
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    )
    assert written == ["album/x.png", "album_/x.png", "single.png"]
