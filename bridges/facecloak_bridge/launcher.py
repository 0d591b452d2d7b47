"""Finding the engine's Python and starting the server, detached, when none is running.

The plug-ins run inside GIMP's or the system's Python, which has no PyTorch; the server runs in
the engine's own environment. Which Python that is: ``FACECLOAK_ENGINE_PYTHON`` if set, else
this interpreter when it can import ``facecloak``, else ``python =`` under ``[engine]`` in
``~/.config/facecloak/bridge.conf``.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from facecloak_bridge import paths
from facecloak_bridge.errors import EngineNotInstalled, EngineStartFailed, EngineTimeout

INSTALL_HINT = (
    "the facecloak engine is not installed: run scripts/setup-env.sh in a facecloak checkout, "
    "then set FACECLOAK_ENGINE_PYTHON=<checkout>/.venv/bin/python (or put 'python = ...' "
    "under [engine] in {config})"
)


@dataclass
class Settings:
    """Where the server is and how to start it; :meth:`from_environ` reads the usual places."""

    runtime_dir: str
    state_dir: str
    engine_python: str | None = None  # FACECLOAK_ENGINE_PYTHON: wins over everything
    config_python: str | None = None  # from bridge.conf: used when this Python lacks facecloak
    config_path: str = ""
    start_timeout: float = 60.0  # seconds for a new server to answer
    reply_timeout: float = 120.0  # seconds of silence from a busy server before giving up
    serve_args: list[str] = field(default_factory=list)  # extra ``facecloak serve`` options
    shared_memory: bool = True  # pixels through memory files where possible (else the socket)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        config_path = paths.config_file(env)
        parser = configparser.ConfigParser()
        try:
            parser.read(config_path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as error:
            raise EngineNotInstalled(
                "cannot read {}: {}".format(config_path, " ".join(str(error).split()))
            ) from None
        section = parser["engine"] if parser.has_section("engine") else {}
        settings = cls(
            runtime_dir=paths.runtime_dir(env),
            state_dir=paths.state_dir(env),
            engine_python=env.get("FACECLOAK_ENGINE_PYTHON") or None,
            config_python=section.get("python") or None,
            config_path=config_path,
        )
        try:
            settings.start_timeout = float(section.get("start_timeout", settings.start_timeout))
            settings.reply_timeout = float(section.get("reply_timeout", settings.reply_timeout))
            if section.get("idle_timeout"):
                settings.serve_args += ["--idle-timeout", str(float(section["idle_timeout"]))]
        except ValueError:
            raise EngineNotInstalled(
                f"{config_path}: timeouts must be numbers of seconds"
            ) from None
        shared = str(section.get("shared_memory", "yes")).strip().lower()
        if shared not in ("yes", "no", "true", "false", "on", "off", "1", "0"):
            raise EngineNotInstalled(f"{config_path}: shared_memory must be yes or no")
        settings.shared_memory = shared in ("yes", "true", "on", "1")
        return settings

    @property
    def socket_path(self) -> str:
        return os.path.join(self.runtime_dir, paths.SOCKET_NAME)

    @property
    def log_path(self) -> str:
        return os.path.join(self.state_dir, paths.LOG_NAME)

    @property
    def start_log_path(self) -> str:
        return os.path.join(self.state_dir, paths.START_LOG_NAME)


def find_engine_python(settings: Settings) -> str:
    """The Python that runs the engine, or :class:`EngineNotInstalled` saying how to get one."""
    if settings.engine_python:
        return _executable(settings.engine_python, "FACECLOAK_ENGINE_PYTHON", settings.config_path)
    if importlib.util.find_spec("facecloak") is not None:
        return sys.executable
    if settings.config_python:
        return _executable(settings.config_python, settings.config_path, settings.config_path)
    raise EngineNotInstalled(INSTALL_HINT.format(config=settings.config_path))


def _executable(path: str, where: str, config_path: str) -> str:
    """``path`` when it is a runnable file; else an error naming where it came from."""
    path = os.path.expanduser(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise EngineNotInstalled(
            f"the engine Python {path} (from {where}) is not an executable file; "
            + INSTALL_HINT.format(config=config_path)
        )
    return path


def start_server(settings: Settings) -> subprocess.Popen:
    """Start ``facecloak serve`` in its own session, detached from the caller's terminal."""
    python = find_engine_python(settings)
    os.makedirs(settings.state_dir, mode=0o700, exist_ok=True)
    command = [
        python, "-m", "facecloak.cli", "serve",
        "--runtime-dir", settings.runtime_dir, "--state-dir", settings.state_dir,
        *settings.serve_args,
    ]  # fmt: skip
    env: dict[str, str] = dict(os.environ)
    if python != sys.executable:
        env.pop("PYTHONPATH", None)  # the engine's environment, not the host program's
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(settings.start_log_path, flags, 0o600), "wb") as start_log:
        try:
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=start_log, stderr=start_log,
                cwd="/", env=env, start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError as error:
            raise EngineStartFailed(
                f"cannot run the engine Python {python}: {error.strerror or error}"
            ) from None


def wait_until_ready(
    settings: Settings, process: subprocess.Popen, probe: Callable[[], bool]
) -> None:
    """Wait (bounded by ``settings.start_timeout``) until ``probe()`` reaches the server."""
    deadline = time.monotonic() + settings.start_timeout
    pause = 0.02
    while True:
        if probe():
            return
        code = process.poll()
        if code not in (None, 0):  # 0: another server won the lock; it is the one to wait for
            raise EngineStartFailed(
                f"the engine failed to start (exit code {code}): "
                f"{_last_line(settings.start_log_path)}; "
                f"see {settings.start_log_path} and {settings.log_path}"
            )
        if time.monotonic() > deadline:
            if process.poll() is None:
                process.terminate()
            raise EngineTimeout(
                f"the engine did not answer within {settings.start_timeout:.0f} s of starting; "
                f"see {settings.start_log_path} and {settings.log_path}"
            )
        time.sleep(pause)
        pause = min(pause * 1.5, 0.25)


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            lines = [line for line in handle.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return "no output"
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1] if lines else "no output"
