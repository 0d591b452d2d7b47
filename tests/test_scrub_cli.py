"""``facecloak scrub`` from the outside: exit codes, one-line errors, JSON, --check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from facecloak.cli import main

from tests.conftest import shared_data
from tests.test_scrub import exiftool_read, leftovers, require_exiftool


@pytest.fixture()
def photos(tmp_path) -> list[Path]:
    require_exiftool()
    folder = tmp_path / "in"
    folder.mkdir()
    names = [("exiftool-t-images", "GPS.jpg"), ("mat2-tests-data", "dirty.png")]
    copies = []
    for parts in names:
        copies.append(folder / parts[-1])
        shutil.copy(shared_data("meta", *parts), copies[-1])
    return copies


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("facecloak: error:")]


def test_scrub_to_a_folder_with_a_json_report(photos, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    report = tmp_path / "report.json"
    before = [path.read_bytes() for path in photos]
    code = main(["scrub", *map(str, photos), "--output-dir", str(out_dir), "--json", str(report)])
    assert code == 0
    assert [path.read_bytes() for path in photos] == before
    outputs = [out_dir / path.name for path in photos]
    tags = exiftool_read(outputs)
    assert leftovers("JPEG", tags[outputs[0]]) == [] and leftovers("PNG", tags[outputs[1]]) == []
    data = json.loads(report.read_text())
    assert data["action"] == "scrub" and [f["ok"] for f in data["files"]] == [True, True]
    assert data["files"][0]["method"] == "exiftool" and data["files"][0]["lossless"]
    assert "removed" in capsys.readouterr().out


def test_check_exit_codes_and_in_place(photos, capsys):
    photo = photos[0]
    assert main(["scrub", "--check", str(photo)]) == 1
    captured = capsys.readouterr()
    assert "location: GPS:GPSLatitude" in captured.out
    assert main(["scrub", "--in-place", str(photo)]) == 0
    assert main(["scrub", "--check", str(photo)]) == 0
    assert f"{photo}: clean" in capsys.readouterr().out


def test_usage_errors_exit_2_and_bad_files_exit_1(photos, tmp_path, capsys):
    photo = str(photos[0])
    for argv in (
        ["scrub", photo],  # nowhere to write
        ["scrub", photo, "-o", "x.jpg", "--in-place"],
        ["scrub", photo, str(photos[1]), "-o", "x.jpg"],
        ["scrub", photo, "--output-dir", str(tmp_path / "missing")],
        ["scrub", photo, "-o", "x.jpg", "--sidecars", "burn"],
    ):
        assert main(argv) == 2, argv
        assert len(_error_lines(capsys.readouterr().err)) == 1, argv
    raw = shared_data("meta", "exiftool-t-images", "Nikon.nef")
    out = tmp_path / "raw.jpg"
    assert main(["scrub", str(raw), "-o", str(out)]) == 1
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "darktable" in lines[0] and not out.exists()
    missing = tmp_path / "missing.jpg"
    assert main(["scrub", str(missing), photo, "--output-dir", str(tmp_path)]) == 1
    assert (tmp_path / "GPS.jpg").exists(), "the good input is still done"
