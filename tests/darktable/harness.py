"""Running the real darktable (CLI and GUI under Xvfb) with facecloak's script, for the tests
and the benchmark: a private configuration, engine server and temporary folder per run, so
that nothing touches a user's darktable or facecloak server.

Two darktables: the host's (4.2 on Debian 12, 5.0 on Debian 13) and, on a Debian 12 host,
Debian 13's 5.0 from the root that ``.ci/setup.d/debian13-root.sh`` builds
(``FACECLOAK_DEBIAN13_ROOT``, else ``FACECLOAK_GIMP3_ROOT``, default
``/opt/facecloak-ci/gimp3-root``; GIMP 3's tests use the same root), entered with bubblewrap:
the root is ``/``, and the checkout, the shared data, ``/tmp`` and the run's folders are bound
at their own paths. darktable's Lua runs ``facecloak-client`` there with Debian 13's python3;
the engine (this checkout's venv, built for the host) cannot run inside, so the harness starts
the server on the host first and the client inside reaches it through the shared socket.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLIENT = PROJECT_ROOT / "bridges" / "facecloak-client"
INSTALLER = PROJECT_ROOT / "installers" / "darktable.py"
DRIVER = Path(__file__).with_name("gui_driver.lua")
# Plumbing, not protection: the cheapest cloak the engine accepts.
CHEAP_OPTIONS = "--steps 1 --extra-steps 0 --samples 1"
SECRETS = (b"Jane Photographer", b"secret-tag", b"private person", b"SN-4711-0815", b"Canon")
SETUP_HINT = "install them with: sudo bash .ci/setup.d/darktable.sh"
STUCK_AT_START = -1000  # run_bounded's exit status for a run that never got going
SHARED = PROJECT_ROOT.parent / "shared"
DEBIAN13_ROOT = Path(
    os.environ.get("FACECLOAK_DEBIAN13_ROOT")
    or os.environ.get("FACECLOAK_GIMP3_ROOT")
    or "/opt/facecloak-ci/gimp3-root"
)
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# host variables that would point Debian 13's programs at the host's libraries or Python
HOST_ONLY = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
             "VIRTUAL_ENV", "XAUTHORITY")  # fmt: skip


@dataclass(frozen=True)
class Install:
    """Where darktable comes from: the host (``root`` None), or a Debian root entered with
    bubblewrap."""

    name: str
    root: Path | None = None

    def missing(self, *programs: str) -> str | None:
        """Why ``programs`` cannot run here (with how to install them), or None."""
        if self.root is None:
            absent = [name for name in programs if shutil.which(name) is None]
            return f"{', '.join(absent)} not installed; {SETUP_HINT}" if absent else None
        hint = "run as root: bash .ci/setup.d/darktable.sh (builds it with mmdebstrap)"
        if shutil.which("bwrap") is None:
            return f"bwrap (bubblewrap) not installed, needed to enter {self.root}; {hint}"
        absent = [name for name in programs if not (self.root / "usr" / "bin" / name).exists()]
        if absent:
            return f"{', '.join(absent)} not in the Debian 13 root {self.root}; {hint}"
        return None

    @functools.cached_property
    def version_text(self) -> str:
        """What ``darktable-cli --version`` says first ("darktable 5.0.1")."""
        done = subprocess.run(
            [*self.wrap([]), "darktable-cli", "--version"], capture_output=True, text=True,
            timeout=120, env=self.env(without_venv_libraries(dict(os.environ))),
        )  # fmt: skip
        return (done.stdout + done.stderr).strip().splitlines()[0]

    @property
    def version(self) -> str:
        """darktable's version number, e.g. ``5.0.1``."""
        match = re.search(r"\b(\d+\.\d+(?:\.\d+)?)", self.version_text)
        assert match, f"no version in {self.version_text!r}"
        return match.group(1)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` for a program run in this darktable's system."""
        if self.root is None:
            return env
        env = {k: v for k, v in env.items() if k not in HOST_ONLY}
        env["PATH"] = ROOT_PATH
        return env

    def wrap(self, paths: list[Path]) -> list[str]:
        """The prefix that runs a command here, with ``paths`` (and their subfolders) shared
        at the same place (the nearest existing folder above each one that does not exist)."""
        if self.root is None:
            return []
        command = ["bwrap", "--bind", str(self.root), "/", "--proc", "/proc", "--dev", "/dev",
                   "--die-with-parent"]  # fmt: skip
        shared: list[Path] = []
        for path in sorted({Path(tempfile.gettempdir()), Path("/tmp"), *map(Path, paths)}):
            path = path.resolve()
            while not path.exists():
                path = path.parent
            if path.is_file():
                path = path.parent
            if not any(path.is_relative_to(done) for done in shared):
                shared.append(path)
                command += ["--bind", str(path), str(path)]
        for path in (PROJECT_ROOT, SHARED):
            if path.exists() and not any(path.is_relative_to(done) for done in shared):
                command += ["--ro-bind", str(path), str(path)]
        return command


def without_venv_libraries(env: dict[str, str]) -> dict[str, str]:
    """importing cv2 (the face detector) points LD_LIBRARY_PATH into the venv: darktable
    would load those libraries and hang at start-up."""
    kept = [p for p in env.pop("LD_LIBRARY_PATH", "").split(":") if p and sys.prefix not in p]
    if kept:
        env["LD_LIBRARY_PATH"] = ":".join(kept)
    return env


HOST = Install("host")
DEBIAN13 = Install("debian13-root", DEBIAN13_ROOT)
INSTALLS = {install.name: install for install in (HOST, DEBIAN13)}


def require_programs(*names: str) -> None:
    """Skip LOUDLY when a program the test drives is not installed (CI installs them)."""
    require_install(HOST, *names, stacklevel=3)


def require_install(install: Install, *programs: str, stacklevel: int = 2) -> None:
    """Skip LOUDLY when ``install`` lacks a program the test drives (CI installs them)."""
    import pytest

    reason = install.missing(*programs)
    if reason:
        message = f"SKIPPED ({install.name} darktable): {reason}"
        warnings.warn(message, stacklevel=stacklevel + 1)
        pytest.skip(message)


@dataclass
class Darktable:
    """One private darktable set-up: config folder with the script installed, HOME, XDG
    folders, TMPDIR, and the environment that points the bridge at this checkout's engine."""

    root: Path
    engine_python: str = sys.executable
    conf: dict[str, str] = field(default_factory=dict)
    # where the engine server's socket and logs live; share it to keep one server warm
    server_home: Path | None = None
    install: Install = HOST

    def __post_init__(self) -> None:
        self.configdir = self.root / "config"
        self.server_home = self.server_home or self.root
        for name in ("home", "tmp", "cache", "xdg-config"):
            (self.root / name).mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("run", "state"):
            (self.server_home / name).mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            [sys.executable, str(INSTALLER), "install", "--configdir", str(self.configdir),
             "--engine", str(CLIENT)],
            check=True, capture_output=True, env=self.env(),
        )  # fmt: skip
        self.conf = {"write_sidecar_files": "never", **self.conf}

    def env(self) -> dict[str, str]:
        env = without_venv_libraries(dict(os.environ))
        env.update(
            HOME=str(self.root / "home"),
            XDG_RUNTIME_DIR=str(self.server_home / "run"),
            XDG_STATE_HOME=str(self.server_home / "state"),
            XDG_CONFIG_HOME=str(self.root / "xdg-config"),
            XDG_CACHE_HOME=str(self.root / "cache"),
            TMPDIR=str(self.root / "tmp"),
            FACECLOAK_ENGINE_PYTHON=self.engine_python,
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        )
        return env

    def core_args(self, conf: dict[str, str]) -> list[str]:
        args = ["--configdir", str(self.configdir), "--library", ":memory:"]
        for key, value in {**self.conf, **conf}.items():
            args += ["--conf", f"{key}={value}"]
        return args

    def cli(
        self, source: Path, pattern: str, conf: dict[str, str], timeout: int = 300,
        luacmd: str = 'require "facecloak/facecloak"',
    ):  # fmt: skip
        """darktable-cli over a file or folder with the script loaded (the CLI reads no luarc)."""
        command = ["darktable-cli", str(source), pattern, "--core", *self.core_args(conf)]
        command += ["--luacmd", luacmd]
        cloaks = {**self.conf, **conf}.get("lua/facecloak/hook") == "TRUE"
        return self._run(command, self.env(), timeout, [source, Path(pattern)], engine=cloaks)

    def _run(self, command: list[str], env: dict[str, str], timeout: int, paths: list[Path],
             engine: bool = True, **bounded):  # fmt: skip
        """``command`` in this darktable's system (and, when it will cloak, the engine started
        on the host first, where the engine cannot start from inside)."""
        if self.install.root is not None and engine:
            self.start_server_on_host()
        prefix = self.install.wrap([self.root, self.server_home, *paths])
        return run_bounded([*prefix, *command], self.install.env(env), timeout, **bounded)

    def start_server_on_host(self) -> None:
        """Start the engine server (when the engine's Python exists) from outside the root."""
        if not os.access(self.engine_python, os.X_OK):
            return  # the engine-down tests: the client inside must find no server
        done = subprocess.run([str(CLIENT), "start"], env=self.env(), capture_output=True,
                              text=True, timeout=180)  # fmt: skip
        assert done.returncode == 0, f"the engine server did not start: {done.stdout}{done.stderr}"

    def gui_export(
        self, photos: list[Path], conf: dict[str, str], shot: Path | None = None, timeout=300
    ):
        """The GUI under xvfb-run: import, tag, select, export through the configured storage."""
        shutil.copy(DRIVER, self.configdir / "lua" / "gui_driver.lua")
        inputs = self.root / "inputs.txt"
        inputs.write_text("".join(f"{p}\n" for p in photos), encoding="utf-8")
        env = self.env()
        env["FACECLOAK_TEST_INPUTS"] = str(inputs)
        env["FACECLOAK_TEST_TIMEOUT"] = str(timeout - 30)
        if shot is not None and self.install.root is not None:  # no Pillow inside: ImageMagick
            env["FACECLOAK_TEST_SHOT"] = subprocess.list2cmdline(
                ["import", "-window", "root", "-crop", "1600x1000+0+0", "+repage", str(shot)]
            )
        elif shot is not None:
            grab = (
                "import os, sys; from PIL import ImageGrab; "
                "ImageGrab.grab(xdisplay=os.environ['DISPLAY']).crop((0, 0, 1600, 1000))"
                ".save(sys.argv[1])"
            )
            env["FACECLOAK_TEST_SHOT"] = subprocess.list2cmdline(
                [sys.executable, "-c", grab, str(shot)]
            )
        ui = {
            "plugins/lighttable/export/expanded": "TRUE",
            "ui_last/window_w": "1600",
            "ui_last/window_h": "1000",
            "ui_last/window_x": "0",
            "ui_last/window_y": "0",
        }
        # The screen is larger than the window: Xvfb's pointer starts at the screen's centre,
        # and over a thumbnail it would make darktable export the hovered image only.
        command = ["xvfb-run", "-a", "-s", "-screen 0 3400x2200x24", "darktable"]
        command += [*self.core_args({**ui, **conf}), "--luacmd", 'require "gui_driver"']
        if os.environ.get("FACECLOAK_TEST_DT_DEBUG"):  # darktable's own Lua messages
            command += ["-d", "lua"]
        paths = [*photos, *([shot] if shot else [])]
        bounded = {"started": "gui_driver: imported", "start_limit": 120}
        run = self._run(command, env, timeout, paths, **bounded)
        if run.returncode == STUCK_AT_START:  # darktable's start-up race: say so, try once more
            print("WARNING: darktable hung at start-up (GUI call from Lua); retrying once")
            # The killed darktable may linger as an unreaped zombie (a container's init need
            # not reap), and its lock files name that pid: the retry would find the
            # database "locked". The configuration folder is this run's own.
            for lock in self.configdir.glob("*.db.lock"):
                lock.unlink(missing_ok=True)
            run = self._run(command, env, timeout, paths, **bounded)
        return run

    def stop_server(self) -> None:
        subprocess.run([str(CLIENT), "stop"], env=self.env(), capture_output=True, timeout=60)


def run_bounded(
    command: list[str], env: dict[str, str], timeout: int, started: str = "",
    start_limit: float = 0,
):  # fmt: skip
    """Run under ``timeout`` (and kill the whole process group if even that hangs). With
    ``started``: if that text has not appeared in the output after ``start_limit`` seconds,
    kill the run and return :data:`STUCK_AT_START` as its exit status."""
    bounded = ["timeout", "-k", "10", str(timeout), *command]
    process = subprocess.Popen(
        bounded, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout + 30
    stuck = False
    while process.poll() is None and time.monotonic() < deadline:
        if started and time.monotonic() - (deadline - timeout - 30) > start_limit:
            if not any(started in line for line in lines):
                stuck = True
                break
            started = ""
        time.sleep(0.5)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    reader.join(timeout=10)
    code = STUCK_AT_START if stuck else process.returncode
    return subprocess.CompletedProcess(bounded, code, "".join(lines), None)


def prepare_photos(sources: list[Path], folder: Path, names: list[str] | None = None) -> list[Path]:
    """Copies of real photos (named ``names``) carrying GPS, camera serial, artist, XMP creator
    and keywords."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for source, name in zip(sources, names or [s.name for s in sources], strict=True):
        copy = folder / name
        shutil.copyfile(source, copy)
        copies.append(copy)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-GPSLatitude=48.8584", "-GPSLatitudeRef=N",
         "-GPSLongitude=2.2945", "-GPSLongitudeRef=E", "-Artist=Jane Photographer",
         "-XMP-dc:Creator=Jane Photographer", "-XMP-dc:Subject=secret-tag",
         "-IPTC:Keywords=secret-tag", "-ExifIFD:SerialNumber=SN-4711-0815", "-Make=Canon",
         *map(str, copies)],
        check=True, capture_output=True,
    )  # fmt: skip
    return copies


def identifying_metadata(path: Path) -> list[str]:
    """What exiftool (and a byte search) still finds in a file that could identify anyone."""
    found = [repr(secret) for secret in SECRETS if secret in path.read_bytes()]
    result = subprocess.run(
        ["exiftool", "-j", "-G1", "-a", "-n", str(path)], capture_output=True, text=True
    )
    tags = json.loads(result.stdout)[0]
    allowed = ("File", "System", "ExifTool", "Composite", "JFIF", "ICC", "PNG", "APP14")
    for key in tags:
        group = key.split(":", 1)[0] if ":" in key else ""
        if group and not group.startswith(allowed):
            found.append(key)
    return found


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.float32)


def face_and_background_change(baseline: Path, cloaked: Path, detector) -> tuple[float, float]:
    """Mean absolute change inside the detected face boxes, and far from every face."""
    before, after = read_rgb(baseline), read_rgb(cloaked)
    assert before.shape == after.shape, f"{cloaked.name}: size changed"
    change = np.abs(before - after).mean(axis=2)
    faces = detector.detect(before.astype(np.uint8)).faces
    assert faces, f"{baseline.name}: no face detected in darktable's uncloaked export"
    inside = np.zeros(change.shape, bool)
    far = np.ones(change.shape, bool)
    for face in faces:
        x, y, w, h = (round(v) for v in face.box)
        margin = int(max(w, h) * 0.6)
        inside[max(0, y) : y + h, max(0, x) : x + w] = True
        far[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin] = False
    return float(change[inside].mean()), float(change[far].mean())
