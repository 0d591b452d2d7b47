"""installers/install.sh end to end in a fresh home: install, doctor, use, uninstall.

This creates a real engine environment (PyTorch included) under a temporary HOME, so it takes
a few minutes; it is what a new user runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import PROJECT_ROOT, shared_data

INSTALL = PROJECT_ROOT / "installers" / "install.sh"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)
    env["PATH"] = f"{home}/.local/bin:/usr/local/bin:/usr/bin:/bin"
    env["XDG_RUNTIME_DIR"] = str(home / "run")
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    return env


def _run(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(INSTALL), *args], env=_env(home), capture_output=True, text=True, timeout=timeout
    )


def _tree(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_dry_run_changes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    before = _tree(home)
    result = _run(home, "--dry-run", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "would create the engine environment" in result.stdout
    assert _tree(home) == [*before, "run"]


def test_unknown_option_is_a_usage_error(tmp_path):
    result = _run(tmp_path, "--frobnicate", timeout=60)
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


@pytest.mark.slow
def test_install_check_use_and_uninstall_leave_nothing_behind(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    before = _tree(home)
    installed = _run(home)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    bin_dir = home / ".local" / "bin"
    assert (bin_dir / "facecloak").is_symlink() and (bin_dir / "facecloak-client").is_symlink()

    doctor = _run(home, "--check", timeout=600)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for check in ("engine importable", "models load", "server starts", "exiftool present"):
        assert f"OK   {check}" in doctor.stdout
    if shutil.which("gimp-console-2.10") or shutil.which("gimp-console-3.0"):
        assert "OK   GIMP plug-in" in doctor.stdout
    if shutil.which("darktable-cli"):
        assert "OK   darktable script" in doctor.stdout

    # The installed commands work: cloak a real face through the server the doctor started.
    source = shared_data("faces", "lfw62", "Alvaro_Uribe", "Alvaro_Uribe_0001.jpg")
    out = tmp_path / "cloaked.png"
    used = subprocess.run(
        [str(bin_dir / "facecloak-client"), "cloak", str(source), str(out), "--mode", "low",
         "--steps", "3", "--samples", "1", "--extra-steps", "0"],
        env=_env(home), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert used.returncode == 0, used.stdout + used.stderr
    before_px = np.asarray(Image.open(source).convert("RGB"), dtype=int)
    after_px = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    assert np.abs(before_px - after_px)[80:180, 90:170].max() > 0  # the face changed

    if shutil.which("gimp-console-2.10"):
        _cloak_in_gimp2(home, tmp_path)

    again = _run(home)  # idempotent: a second install upgrades in place
    assert again.returncode == 0, again.stderr[-2000:]
    removed = _run(home, "--uninstall", timeout=300)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    left = set(_tree(home)) - {*before, "run"}
    assert not [path for path in left if "facecloak" in path.lower()], sorted(left)
    # What remains is GIMP's own profile and caches from running it, none of it ours.
    gimps_own = [p for p in left if p.startswith((".cache", ".config/GIMP", ".local/share/gegl-"))]
    parents = {str(Path(p).parent) for p in gimps_own} | {".local", ".config"}
    foreign = [p for p in left if p not in gimps_own and p not in parents]
    assert not foreign, sorted(foreign)


def _cloak_in_gimp2(home: Path, tmp_path: Path) -> None:
    """GIMP 2.10 runs the plug-in the installer put in the fresh profile, with its engine."""
    photo = shared_data("photos", "dlib-examples-faces", "2008_001322.jpg")
    out = tmp_path / "gimp2-cloaked.png"
    # plug-in-facecloak: mode low, whole layer, seed 0, 2 steps, 1 sample, no extra steps.
    script = (
        f'(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "{photo}" "{photo}")))'
        "(layer (car (gimp-image-get-active-layer image))))"
        "(plug-in-facecloak RUN-NONINTERACTIVE image layer 0 0 0 2 1 0)"
        f'(gimp-file-save RUN-NONINTERACTIVE image layer "{out}" "{out}"))'
    )
    command = ["timeout", "-k", "10", "400", "gimp-console-2.10", "-i", "-d", "-f",
               "-b", script, "-b", "(gimp-quit 0)"]  # fmt: skip
    ran = subprocess.run(command, env=_env(home), capture_output=True, text=True, timeout=450)
    assert out.exists(), ran.stdout[-2000:] + ran.stderr[-2000:]
    before = np.asarray(Image.open(photo).convert("RGB"), dtype=int)
    after = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    changed = np.abs(before - after).max(axis=2) > 0
    assert before.shape == after.shape and 0 < changed.mean() < 0.5
