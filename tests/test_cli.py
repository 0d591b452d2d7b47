"""``facecloak cloak`` from the outside: exit codes, one-line errors, what the output holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from facecloak.cli import main
from PIL import Image

from tests.conftest import shared_data

QUICK = ["--steps", "2", "--extra-steps", "0"]  # these tests check plumbing, not protection


@pytest.fixture()
def portrait(tmp_path) -> Path:
    """A real camera JPEG with EXIF, GPS-free but with a thumbnail and maker data."""
    source = shared_data("photos", "face_recognition-examples", "obama.jpg")
    copy = tmp_path / "obama.jpg"
    shutil.copy(source, copy)
    return copy


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_cloaks_a_camera_jpeg_and_writes_no_metadata_but_icc(portrait, tmp_path, capsys):
    before = portrait.read_bytes()
    assert Image.open(portrait).getexif(), "test input should carry EXIF"
    out = tmp_path / "out.jpg"
    report = tmp_path / "report.json"
    code = main(["cloak", str(portrait), "-o", str(out), "--json", str(report), *QUICK])
    assert code == 0
    assert portrait.read_bytes() == before, "the input must never be modified"
    cloaked = Image.open(out)
    assert cloaked.size == Image.open(portrait).size
    assert not cloaked.getexif() and "exif" not in cloaked.info and "xmp" not in cloaked.info
    assert set(cloaked.info) <= {"icc_profile", "jfif", "jfif_version", "jfif_unit",
                                 "jfif_density", "dpi", "progressive", "progression"}  # fmt: skip
    data = json.loads(report.read_text())
    photo = data["photos"][0]
    assert photo["ok"] and photo["faces_cloaked"] == 1 and photo["seconds"] > 0
    assert "1 face(s) found, 1 cloaked" in capsys.readouterr().out


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    for argv in (
        ["cloak", "a.jpg"],  # no output given
        ["cloak", "a.jpg", "b.jpg", "-o", "x.jpg"],  # -o with two inputs
        ["cloak", "a.jpg", "-o", "x.jpg", "--bogus"],  # unknown option
        ["cloak", "a.jpg", "-o", "x.jpg", "--mode", "extreme"],
        ["cloak", "a.jpg", "--output-dir", str(tmp_path / "missing")],
        ["cloak", "a.jpg", "-o", "x.jpg", "--steps", "0"],
    ):
        assert main(argv) == 2, argv
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and err[0].startswith("facecloak: error:"), err


def test_bad_inputs_fail_alone_and_the_rest_is_done(portrait, tmp_path, capsys):
    garbage = tmp_path / "notes.jpg"
    garbage.write_text("this is not a photo")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(portrait.read_bytes()[:20000])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["cloak", str(garbage), str(truncated), str(portrait),
                 "--output-dir", str(out_dir), *QUICK])  # fmt: skip
    assert code == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 2 and "notes.jpg" in err[0] and "truncated.jpg" in err[1]
    assert sorted(p.name for p in out_dir.iterdir()) == ["obama.jpg"], "no half-written files"


def test_existing_output_is_kept_unless_overwrite(portrait, tmp_path, capsys):
    out = tmp_path / "out.jpg"
    out.write_bytes(b"precious")
    assert main(["cloak", str(portrait), "-o", str(out), *QUICK]) == 1
    assert out.read_bytes() == b"precious"
    assert "exists" in capsys.readouterr().err
    assert main(["cloak", str(portrait), "-o", str(out), "--overwrite", *QUICK]) == 0
    assert out.read_bytes() != b"precious"


def test_output_over_the_input_is_refused_even_with_overwrite(portrait, capsys):
    before = portrait.read_bytes()
    assert main(["cloak", str(portrait), "-o", str(portrait), "--overwrite", *QUICK]) == 1
    assert portrait.read_bytes() == before


def test_orientation_is_baked_into_the_pixels(tmp_path):
    source = shared_data("meta", "recurser-orientation", "Landscape_6.jpg")
    out = tmp_path / "out.png"
    assert main(["cloak", str(source), "-o", str(out), *QUICK]) == 0
    upright = Image.open(shared_data("meta", "recurser-orientation", "Landscape_1.jpg"))
    result = Image.open(out)
    assert result.size == upright.size and not result.getexif()
    expected = np.asarray(upright.convert("RGB"), float)
    difference = np.abs(np.asarray(result, float) - expected).mean()
    mirrored = np.abs(np.asarray(result, float)[:, ::-1] - expected).mean()
    # Only JPEG noise between the two camera files, against a wholesale mismatch if mirrored.
    assert difference < 6 and mirrored > 4 * difference


def test_before_after_picture_and_console_entry_point(tmp_path):
    source = shared_data("photos", "skimage", "astronaut.png")
    out, picture = tmp_path / "a.png", tmp_path / "ba.png"
    result = subprocess.run(
        [sys.executable, "-m", "facecloak.cli", "cloak", str(source), "-o", str(out),
         "--before-after", str(picture), *QUICK],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    strip = Image.open(picture)
    assert strip.width > 2 * strip.height  # original | cloaked | difference
