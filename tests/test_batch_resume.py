"""A batch of hundreds of files, interrupted by SIGINT and by SIGKILL, then resumed: every output
exists once, faces are cloaked, outputs are clean, and no input was touched."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from facecloak.imageio import load_image
from PIL import Image

from tests.conftest import shared_data

CHEAP = ["--mode", "low", "--steps", "1", "--samples", "1", "--extra-steps", "0"]
COPIES = 16  # small copies of each photo: 19 photos -> 304 generated files
KEPT = ("alex-lacamoire.png", "biden.jpg", "kit_with_rose.jpg", "obama_small.jpg")


def _inputs(root: Path) -> None:
    """Real photos with faces, and small re-encoded copies carrying GPS and camera EXIF."""
    photos = shared_data("photos")
    shutil.copytree(photos / "skimage", root / "photos" / "skimage")
    for name in KEPT:  # a few of the real photos, to keep the cloaking time down
        (root / "photos" / "examples").mkdir(parents=True, exist_ok=True)
        shutil.copy(photos / "face_recognition-examples" / name, root / "photos" / "examples")
    everything = [*photos.glob("face_recognition-examples/*"), *photos.glob("skimage/*")]
    for number, photo in enumerate(sorted(everything)):
        if photo.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        small = Image.open(photo).convert("RGB")
        small.thumbnail((64, 64))
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "SpyCam", "Model 7"  # Make, Model
        exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 0.0)})  # GPS
        for copy in range(COPIES):
            folder = root / "generated" / f"set{copy:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            kind = "png" if copy % 2 else "jpg"
            small.save(folder / f"{number:02d}-{photo.stem}.{kind}", exif=exif)
    (root / "generated" / "notes.txt").write_text("not a photo")
    good = (root / "photos" / "skimage" / "astronaut.png").read_bytes()
    (root / "generated" / "truncated.png").write_bytes(good[: len(good) // 2])


def _hashes(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _done(dest: Path) -> list[dict]:
    manifest = dest / ".facecloak-batch.jsonl"
    if not manifest.exists():
        return []
    records = []
    for line in manifest.read_bytes().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return [r for r in records if r.get("event") == "done"]


def _start(src: Path, dest: Path, report: Path | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "facecloak.cli", "batch", str(src), "-d", str(dest)]
    command += [*CHEAP, "--jobs", "2"]
    if report is not None:
        command += ["--json", str(report)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it. A shell starts background jobs (``cmd &``, as CI
    runners and ``nohup`` often do) with SIGINT ignored, children inherit that, and Python
    then installs no KeyboardInterrupt handler: the batch would rightly run to the end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_when(process: subprocess.Popen, dest: Path, ready, sig: int) -> tuple[int, str]:
    """Signal the batch once ``ready`` holds for its done records; its exit code and the last
    lines of what it printed to stderr (for the failure message)."""
    errors = ""
    try:
        deadline = time.monotonic() + 120
        while not ready(_done(dest)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.05)
        process.send_signal(sig)
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "\n".join(errors.splitlines()[-8:])


@pytest.mark.slow
def test_interrupted_batches_resume_to_one_clean_output_each(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    _inputs(src)
    before = _hashes(src)
    images = [k for k in before if k.endswith((".jpg", ".jpeg", ".png")) and "truncated" not in k]
    others = len(before) - len(images) - 1  # licence, read-me and note files: skipped
    assert len(images) > 300

    code, errors = _interrupt_when(_start(src, dest), dest, lambda d: len(d) >= 100, signal.SIGINT)
    assert code == 130, errors
    assert not list(dest.rglob(".facecloak-*.tmp"))
    after_sigint = len(_done(dest))

    def some_faces_done(done: list[dict]) -> bool:
        return sum(r["status"] == "cloaked" for r in done) >= 3

    code, _ = _interrupt_when(_start(src, dest), dest, some_faces_done, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert len(_done(dest)) > after_sigint

    report = tmp_path / "report.json"
    final = _start(src, dest, report)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 1, err  # the truncated file failed; all else is done
    assert "truncated.png" in err and "failed: 1" in err
    summary = json.loads(report.read_text())
    assert summary["counts"]["failed"] == 1
    assert summary["counts"]["done-before"] > after_sigint

    # Every image exactly once, nothing else but the manifest and its lock.
    written = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert written == sorted([*images, ".facecloak-batch.jsonl", ".facecloak-batch.lock"])
    done = {r["out"]: r for r in _done(dest)}
    assert set(images) <= set(done)
    for name in images:
        output, source = load_image(dest / name), load_image(src / name)
        assert output.pixels.shape == source.pixels.shape
        if name.startswith("photos/"):
            assert done[name]["status"] == "cloaked", name
            assert not np.array_equal(output.pixels, source.pixels), name
    _assert_clean(dest, images)
    assert _hashes(src) == before  # no input touched

    rerun = _start(src, dest)
    out, _ = rerun.communicate(timeout=120)
    assert f"{len(images) + others} done before" in out  # the truncated file is retried


def _assert_clean(dest: Path, images: list[str]) -> None:
    sample = [n for n in images if n.startswith("photos/")] + images[::25]
    try:
        from facecloak.scrub import check_file
    except ImportError:
        for name in sample:
            with Image.open(dest / name) as image:
                assert not image.getexif() and "xmp" not in image.info, name
        return
    for name in sample:
        assert check_file(dest / name) == [], name
