"""The scrubber's contract: errors, in-place, sidecars, ``check_file``, the fallback without
exiftool, the malformed files, and clean re-encoded (cloaked) outputs from ``save_image``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from facecloak.imageio import load_image, save_image
from facecloak.scrub import ScrubError, check_file, scrub_file
from facecloak.scrub.exiftool import ExifTool

from tests.conftest import shared_data
from tests.test_scrub import decode, exiftool_read, icc_of, leftovers, require_exiftool


def _sample(*parts: str) -> Path:
    return shared_data("meta", *parts)


@pytest.fixture()
def gps_photo(tmp_path) -> Path:
    copy = tmp_path / "in" / "photo.jpg"
    copy.parent.mkdir()
    shutil.copy(_sample("exiftool-t-images", "GPS.jpg"), copy)
    return copy


def _strays(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".facecloak"))


def test_errors_are_one_line_name_the_file_and_write_nothing(gps_photo, tmp_path):
    out = tmp_path / "out.jpg"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello, not a photo")
    cases = [
        (tmp_path / "missing.jpg", out, "file not found"),
        (tmp_path, out, "folder"),
        (empty, out, "empty"),
        (text, out, "not an image"),
        (gps_photo, gps_photo, "use --in-place"),
        (gps_photo, tmp_path / "nowhere" / "x.jpg", "does not exist"),
        (_sample("exiftool-t-images", "CanonRaw.cr2"), out, "darktable"),
        (_sample("mat2-tests-data", "dirty.png"), out, "a scrub keeps the format (use .png)"),
    ]
    for source, destination, words in cases:
        with pytest.raises(ScrubError) as caught:
            scrub_file(source, destination)
        message = str(caught.value)
        assert "\n" not in message and words in message, message
        assert not out.exists()
    out.write_bytes(b"existing")
    with pytest.raises(ScrubError, match="already exists"):
        scrub_file(gps_photo, out)
    assert out.read_bytes() == b"existing"
    scrub_file(gps_photo, out, overwrite=True)
    assert out.read_bytes() != b"existing"
    assert _strays(tmp_path) == [] and _strays(gps_photo.parent) == []


def test_in_place_needs_asking_and_keeps_the_file_mode(gps_photo):
    link = gps_photo.with_name("link.jpg")
    link.symlink_to(gps_photo.name)
    os.chmod(gps_photo, 0o640)
    before = gps_photo.read_bytes()
    with pytest.raises(ScrubError):
        scrub_file(gps_photo)  # no output and no in_place: refused, file untouched
    assert gps_photo.read_bytes() == before
    report = scrub_file(link, in_place=True)
    assert report.destination == str(gps_photo.resolve()) and report.removed
    assert link.is_symlink(), "the file behind the link is scrubbed, the link stays"
    assert gps_photo.read_bytes() != before
    assert (gps_photo.stat().st_mode & 0o777) == 0o640
    assert check_file(gps_photo) == []
    assert _strays(gps_photo.parent) == []


def test_sidecars_are_reported_kept_or_deleted(gps_photo, tmp_path):
    xmp = _sample("exiftool-t-images", "XMP.xmp")
    for action in ("report", "keep", "delete"):
        sidecars = [gps_photo.with_name("photo.jpg.xmp"), gps_photo.with_name("photo.XMP")]
        for path in sidecars:
            shutil.copy(xmp, path)
        out = tmp_path / f"{action}.jpg"
        report = scrub_file(gps_photo, out, sidecars=action)
        assert sorted(report.sidecars) == sorted(map(str, sidecars))
        if action == "delete":
            assert not any(path.exists() for path in sidecars)
            assert sorted(report.sidecars_deleted) == sorted(map(str, sidecars))
        else:
            assert all(path.exists() for path in sidecars) and not report.sidecars_deleted
        assert any("sidecar" in note for note in report.notes) == (action == "report")
        for path in sidecars:
            path.unlink(missing_ok=True)


def test_check_lists_identifying_metadata_without_changing_the_file(gps_photo, tmp_path):
    before = gps_photo.read_bytes()
    findings = check_file(gps_photo)
    kinds = {item.kind for item in findings}
    assert {"location", "device", "person", "time", "preview image", "IPTC"} <= kinds
    assert any(item.tag == "GPS:GPSLatitude" for item in findings)
    assert gps_photo.read_bytes() == before
    out = tmp_path / "clean.jpg"
    report = scrub_file(gps_photo, out)
    assert {item.tag for item in report.removed} == {item.tag for item in findings}
    assert check_file(out) == []
    assert report.to_dict()["removed"][0]["tag"] == findings[0].tag


def test_fallback_without_exiftool_is_lossless_clean_and_reported(tmp_path):
    require_exiftool()  # to read the results back independently
    missing = ExifTool(disabled=True)
    samples = {
        "GPS.jpg": ("exiftool-t-images", "GPS.jpg"),
        "ExifTool.jpg": ("exiftool-t-images", "ExifTool.jpg"),
        "dirty.png": ("mat2-tests-data", "dirty.png"),
        "dirty.webp": ("mat2-tests-data", "dirty.webp"),
        "dirty.gif": ("mat2-tests-data", "dirty.gif"),
        "dirty.tiff": ("mat2-tests-data", "dirty.tiff"),
        "Landscape_6.jpg": ("recurser-orientation", "Landscape_6.jpg"),
    }
    outputs = {}
    for name, parts in samples.items():
        source = _sample(*parts)
        outputs[name] = (source, tmp_path / name)
        report = scrub_file(source, tmp_path / name, exiftool=missing)
        if name.endswith(("jpg", "png", "gif", "webp")):
            assert report.method == "builtin" and report.lossless
        if name.endswith(("jpg", "png")):  # exiftool's usual formats: the fallback is reported
            assert any("exiftool not found" in note for note in report.notes)
        if name.endswith("tiff"):
            assert report.method == "pillow" and any("Pillow" in n for n in report.notes)
    tags = exiftool_read([dest for _source, dest in outputs.values()])
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF"}
    for name, (source, dest) in outputs.items():
        assert leftovers(fmt[name.rsplit(".", 1)[1]], tags[dest]) == [], name
        shown = decode(dest, transpose=True)
        assert np.array_equal(decode(source, transpose=True), shown), name
    with pytest.raises(ScrubError, match="needs exiftool"):
        scrub_file(_sample("mat2-tests-data", "dirty.heic"), tmp_path / "x.heic", exiftool=missing)
    assert not (tmp_path / "x.heic").exists()


def test_malformed_files_give_a_clean_error_or_a_clean_output_in_bounded_time(tmp_path):
    require_exiftool()
    folder = shared_data("meta", "malformed-fuzz")
    sources = sorted(path for path in folder.rglob("*") if path.is_file())
    assert len(sources) >= 100
    written, errors, slowest = [], 0, 0.0
    for index, source in enumerate(sources):
        destination = tmp_path / f"{index:03d}{source.suffix}"
        started = time.perf_counter()
        try:
            report = scrub_file(source, destination)
        except ScrubError as error:
            errors += 1
            assert "\n" not in str(error) and source.name in str(error)
            assert not destination.exists()
        else:
            written.append((report.format, destination))
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 20, f"one malformed file took {slowest:.1f} s"
    assert _strays(tmp_path) == []
    tags = exiftool_read([dest for _fmt, dest in written])
    dirty = {dest.name: leftovers(fmt, tags[dest]) for fmt, dest in written}
    assert not any(dirty.values()), {k: v for k, v in dirty.items() if v}
    assert written and errors, (len(written), errors)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp", ".bmp"])
def test_reencoded_outputs_carry_no_metadata_and_bake_orientation(tmp_path, suffix):
    """What every cloak writes (save_image) holds the pixels and the ICC profile, nothing more."""
    require_exiftool()
    source = _sample("recurser-orientation", "Portrait_6.jpg")
    image = load_image(source)
    icc = icc_of(_sample("exiftool-t-images", "ExifTool.tif"))
    assert icc is not None
    out = tmp_path / f"cloaked{suffix}"
    save_image(image.pixels, out, icc_profile=icc if suffix != ".bmp" else None)
    fmt = {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".webp": "WEBP", ".bmp": "BMP"}[suffix]
    tags = exiftool_read([out])[out]
    assert leftovers(fmt, tags) == []
    assert not any(key.endswith(":Orientation") for key, _value in tags), "orientation baked"
    if suffix != ".bmp":
        assert icc_of(out) == icc
    shown = decode(source, transpose=True)
    assert decode(out).shape[:2] == shown.shape[:2]  # portrait, upright, no tag needed


def test_sixteen_bit_outputs_carry_no_metadata(tmp_path):
    require_exiftool()
    pixels = (np.arange(48 * 32 * 3, dtype=np.uint32) * 41 % 65536).astype(np.uint16)
    outputs = {".png": "PNG", ".tif": "TIFF"}
    paths = []
    for suffix in outputs:
        paths.append(tmp_path / f"deep{suffix}")
        save_image(pixels.reshape(48, 32, 3), paths[-1])
    tags = exiftool_read(paths)
    for path in paths:
        assert leftovers(outputs[path.suffix], tags[path]) == [], path.name


def test_a_hung_exiftool_is_killed_and_the_file_fails_in_bounded_time(gps_photo, tmp_path):
    fake = tmp_path / "exiftool"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    tool = ExifTool(executable=str(fake), timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(ScrubError, match="took longer than 1 s"):
        scrub_file(gps_photo, tmp_path / "out.jpg", exiftool=tool)
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "out.jpg").exists() and _strays(tmp_path) == []
    assert tool._process is None  # killed; the next command starts a fresh one
    tool.close()


def test_kept_exiftool_dies_with_a_killed_parent(tmp_path):
    """A -stay_open exiftool polls its closed input for ever; it must not outlive a parent
    that was killed without closing it (a crashed server, kill -9)."""
    require_exiftool()
    import subprocess
    import sys

    script = (
        "import time\n"
        "from facecloak.scrub.exiftool import ExifTool\n"
        "tool = ExifTool()\n"
        "tool.execute('-ver')\n"
        "print(tool._process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _running(child)
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), f"exiftool {child} outlived its killed parent"


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead child not yet reaped still has a /proc entry)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")
