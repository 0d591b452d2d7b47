"""Running the real GIMP 3 and GIMP 2.10 headless against a private facecloak server.

GIMP 3 is ``gimp-console-3.0`` on PATH (Debian 13) or inside the Debian 13 root that
``.ci/setup.d/gimp.sh`` builds on Debian 12 (``FACECLOAK_GIMP3_ROOT``, default
``/opt/facecloak-ci/gimp3-root``), entered with bubblewrap: the test folder, the repository
and the shared data are bound at the same paths, so the plug-in inside reaches the server's
Unix socket on the host. Every GIMP run is under ``timeout``; results are read from files the
batch script writes, never from GIMP's exit code alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = PROJECT_ROOT.parent / "shared"
GIMP3_ROOT = Path(os.environ.get("FACECLOAK_GIMP3_ROOT", "/opt/facecloak-ci/gimp3-root"))
INSTALLER = PROJECT_ROOT / "installers" / "gimp.py"
BATCH3 = Path(__file__).with_name("gimp3_batch.py")
# Plumbing, not protection: the cheapest budget that still cloaks.
CHEAP = {"mode": "low", "steps": 2, "samples": 1, "extra-steps": 0}


def gimp3_command() -> list[str] | None:
    """How to start GIMP 3's console, or None (the reason is in :func:`gimp3_missing`)."""
    if shutil.which("gimp-console-3.0"):
        return []
    if (GIMP3_ROOT / "usr/bin/gimp-console-3.0").exists() and shutil.which("bwrap"):
        return ["bwrap", "--bind", str(GIMP3_ROOT), "/", "--proc", "/proc", "--dev", "/dev"]
    return None


def gimp3_missing() -> str:
    return (
        "SKIPPED: GIMP 3 not found: no gimp-console-3.0 on PATH and no Debian 13 root at "
        f"{GIMP3_ROOT} (with bwrap); run .ci/setup.d/gimp.sh as root (CI does)"
    )


def gimp2_missing() -> str | None:
    if shutil.which("gimp-console-2.10"):
        return None
    return (
        "SKIPPED: GIMP 2.10 not found (no gimp-console-2.10 on PATH); on Debian 12 run "
        ".ci/setup.d/gimp.sh as root (Debian 13 no longer packages GIMP 2.10)"
    )


@dataclass
class Sandbox:
    """A private HOME, config, runtime and state folder, with the plug-in installed in it."""

    base: Path
    server: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, versions: tuple[str, ...]) -> Sandbox:
        base = Path(tempfile.mkdtemp(prefix="fcgimp", dir="/tmp"))
        base.chmod(0o711)
        for name in ("home", "config", "run", "state", "work"):
            (base / name).mkdir(mode=0o700)
        box = cls(base)
        box.env = {
            "HOME": str(base / "home"),
            "XDG_CONFIG_HOME": str(base / "config"),
            "XDG_RUNTIME_DIR": str(base / "run"),
            "XDG_STATE_HOME": str(base / "state"),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        args = [sys.executable, str(INSTALLER), "install", "--engine-python", sys.executable]
        for version in versions:
            args += ["--gimp", version]
        subprocess.run(args, env={**os.environ, **box.env}, check=True, capture_output=True)
        return box

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def log_path(self) -> Path:
        return self.base / "state" / "facecloak" / "server.log"

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start_server(self) -> None:
        """A server on the sandbox's socket, started from the test's Python (the engine's)."""
        runtime = self.base / "run" / "facecloak"
        self.server = subprocess.Popen(
            [sys.executable, "-m", "facecloak.cli", "serve", "--runtime-dir", str(runtime),
             "--state-dir", str(self.base / "state" / "facecloak"), "--idle-timeout", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "engine ready" not in self.log_text():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start: {self.log_text()[-2000:]}")
            time.sleep(0.2)

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(10)
        self.server = None

    def shutdown_servers(self) -> None:
        """Stop a server a plug-in started on the sandbox's socket (the bridge's own way)."""
        from facecloak_bridge import Client, Settings

        Client(Settings.from_environ(self.env), autostart=False).shutdown()

    @property
    def socket_path(self) -> Path:
        return self.base / "run" / "facecloak" / "server.sock"

    def close(self) -> None:
        self.stop_server()
        with suppress(Exception):  # best effort: nothing may be running
            self.shutdown_servers()
        shutil.rmtree(self.base, ignore_errors=True)

    def gimp3(
        self,
        plan: dict,
        timeout: float = 300,
        extra_env: dict | None = None,
        script: Path = BATCH3,
    ):
        """Run ``script`` (default ``gimp3_batch.py``) with ``plan``; returns (results, output)."""
        prefix = gimp3_command()
        assert prefix is not None, gimp3_missing()
        if prefix:
            prefix = [*prefix, *self._binds()]
        plan_path, out_path = self.work / "plan.json", self.work / "results.json"
        plan = {**plan, "out": str(out_path)}
        plan_path.write_text(json.dumps(plan))
        out_path.unlink(missing_ok=True)
        env = {**self.env, "FACECLOAK_TEST_PLAN": str(plan_path), **(extra_env or {})}
        command = [*prefix, "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                   "timeout", "-k", "10", str(int(timeout)), "gimp-console-3.0", "-i",
                   "--batch-interpreter", "python-fu-eval", "-b", "-", "--quit"]  # fmt: skip
        done = subprocess.run(
            command, input=script.read_text(), capture_output=True, text=True,
            timeout=timeout + 30, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        if not out_path.exists():
            raise AssertionError(f"GIMP 3 wrote no results (exit {done.returncode}):\n{output}")
        return json.loads(out_path.read_text()), output

    def start_gimp3_gui(self, display: str, *files: str) -> subprocess.Popen:
        """GIMP 3's GUI on ``display`` (its own process group, for a clean stop)."""
        prefix = gimp3_command()
        assert prefix is not None, gimp3_missing()
        if prefix:
            prefix = [*prefix, *self._binds()]
        env = {**self.env, "DISPLAY": display}
        command = [*prefix, "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                   "timeout", "-k", "10", "300", "gimp-3.0", "--no-splash", *files]  # fmt: skip
        log = open(self.work / "gimp-gui.log", "wb")  # noqa: SIM115 - closed with the sandbox
        return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)

    def _binds(self) -> list[str]:
        binds = ["--tmpfs", "/tmp", "--bind", str(self.base), str(self.base)]
        for path in (PROJECT_ROOT, SHARED):
            binds += ["--ro-bind", str(path), str(path)]
        if Path("/tmp/.X11-unix").is_dir():
            binds += ["--bind", "/tmp/.X11-unix", "/tmp/.X11-unix"]
        return binds

    def gimp2(self, scheme: list[str], timeout: float = 300, extra_env: dict | None = None):
        """Run Script-Fu batch commands in GIMP 2.10; returns GIMP's output."""
        command = ["timeout", "-k", "10", str(int(timeout)), "gimp-console-2.10", "-i", "-d",
                   "-f"]  # fmt: skip
        for expression in [*scheme, "(gimp-quit 0)"]:
            command += ["-b", expression]
        done = subprocess.run(
            command, env={**self.env, **(extra_env or {})}, capture_output=True, text=True,
            timeout=timeout + 30, check=False, cwd=self.work,
        )  # fmt: skip
        return done.stdout + done.stderr
