"""A darktable catalog made by the real darktable (darktable-cli and Lua import into a fresh
library), then batches selected by tag and by film roll; the catalog must not change."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from facecloak.batch.develop import develop
from facecloak.cli import main
from facecloak.imageio import load_image

from tests.conftest import shared_data

CHEAP = ["--mode", "low", "--steps", "1", "--samples", "1", "--extra-steps", "0", "--jobs", "2"]
ROLLS = {
    "rollA": ("obama_small.jpg", "astronaut.png"),
    "rollB": ("biden.jpg", "camera.png"),
}
IMPORT = """
local dt = require "darktable"
local album = dt.tags.create("share|album")
local function add(path) return dt.database.import(path) end
local a = add("{root}/rollA/obama_small.jpg")
dt.tags.attach(album, a)
a.rating = 4
a.red = true
add("{root}/rollA/astronaut.png")
dt.tags.attach(dt.tags.create("share"), add("{root}/rollB/biden.jpg"))
add("{root}/rollB/camera.png")
print("facecloak-test: imported " .. #dt.database)
"""


def _darktable_cli() -> str:
    program = shutil.which("darktable-cli")
    if program is None:
        message = (
            "SKIPPED: darktable-cli is not installed, so no real darktable catalog can be made "
            "(apt-get install darktable; CI installs it through .ci/setup.d/darktable.sh)"
        )
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return program


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """Photos in two film rolls, imported into a fresh library by darktable itself."""
    program = _darktable_cli()
    root = tmp_path_factory.mktemp("dt-catalog")
    photos = root / "photos"
    for roll, names in ROLLS.items():
        (photos / roll).mkdir(parents=True)
        for name in names:
            folder = "skimage" if name.endswith(".png") else "face_recognition-examples"
            shutil.copy(shared_data("photos", folder, name), photos / roll / name)
    config = root / "config"
    config.mkdir()
    script = root / "import.lua"
    script.write_text(IMPORT.replace("{root}", str(photos)))
    command = [program, str(photos / "rollA" / "astronaut.png"), str(root / "export.jpg")]
    command += ["--core", "--configdir", str(config), "--library", str(config / "library.db")]
    command += ["--conf", "write_sidecar_files=never", "--luacmd", f"dofile('{script}')"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert "facecloak-test: imported 4" in run.stdout, run.stdout + run.stderr
    return config / "library.db"


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


def _outputs(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if not p.name.startswith("."))


@pytest.mark.slow
def test_batch_by_tag_and_by_film_roll(catalog: Path, tmp_path: Path) -> None:
    before = _snapshot(catalog.parent)
    by_tag = tmp_path / "by-tag"
    assert (
        main(["batch", "--darktable", str(catalog), "--tag", "share", "-d", str(by_tag), *CHEAP])
        == 0
    )
    assert _outputs(by_tag) == ["rollA", "rollA/obama_small.jpg", "rollB", "rollB/biden.jpg"]

    by_roll = tmp_path / "by-roll"
    argv = ["batch", "--darktable", str(catalog), "--film-roll", "rollB", "-d", str(by_roll)]
    assert main([*argv, *CHEAP]) == 0
    assert _outputs(by_roll) == ["rollB", "rollB/biden.jpg", "rollB/camera.png"]
    photos = catalog.parent.parent / "photos"
    cloaked = load_image(by_roll / "rollB" / "biden.jpg").pixels
    assert (cloaked != load_image(photos / "rollB" / "biden.jpg").pixels).any()

    rated = tmp_path / "rated"
    argv = ["batch", "--darktable", str(catalog), "--min-rating", "3", "--colour", "red"]
    assert main([*argv, "-d", str(rated), "--no-cloak"]) == 0
    assert _outputs(rated) == ["rollA", "rollA/obama_small.jpg"]
    assert _snapshot(catalog.parent) == before  # the catalog was only read


def test_darktable_develops_into_a_readable_tiff(tmp_path: Path) -> None:
    _darktable_cli()
    source = shared_data("photos", "skimage", "astronaut.png")
    developed = develop(source, None, tmp_path)
    image = load_image(developed)
    assert image.pixels.shape == (512, 512, 3) and image.bit_depth == 16


def test_raw_that_darktable_cannot_develop_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _darktable_cli()
    src = tmp_path / "src"
    src.mkdir()
    raw = shared_data("meta", "exiftool-t-images", "Nikon.nef")  # a header-only test file
    (src / "Nikon.nef").write_bytes(raw.read_bytes())
    assert main(["batch", str(src), "-d", str(tmp_path / "out"), *CHEAP]) == 1
    err = capsys.readouterr().err
    assert "Nikon.nef: darktable-cli could not develop it" in err
    assert not [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]
