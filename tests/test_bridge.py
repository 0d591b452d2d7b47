"""The bridge client on its own: Python 3.8 and the standard library only, and clear errors.

These run the client as plug-ins do: a separate Python (the system's, or a 3.8 one when this
machine has it) that has no PyTorch and finds the engine's Python by configuration.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from facecloak_bridge import Client, Settings, paths

from tests.test_server_support import BRIDGES, make_settings, wait_gone

CLIENT = BRIDGES / "facecloak-client"
SYSTEM_PYTHON = "/usr/bin/python3"


def _python38() -> str | None:
    """A real Python 3.8 (pyenv's shims are skipped: they need pyenv's own environment)."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which("python3.8")
    return found if found and "shims" not in found else None


def _bridge_files() -> list[Path]:
    return [*sorted((BRIDGES / "facecloak_bridge").glob("*.py")), CLIENT]


def _client_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    env.update(extra)
    return env


def _run(python: str, args: list[str], env: dict[str, str], timeout: float = 60):
    return subprocess.run([python, "-I", str(CLIENT), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)  # fmt: skip


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("facecloak-client: error:"), lines
    return lines[0]


def test_bridge_is_python_38_syntax_and_standard_library_only():
    for path in _bridge_files():
        tree = ast.parse(path.read_text(), str(path), feature_version=(3, 8))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in (
                    "facecloak_bridge",
                    "__future__",
                ), f"{path.name} imports {name}"


# Pixels both ways (shared memory, then the socket) from a plug-in's Python, without numpy.
_PIXELS_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from facecloak_bridge import Client
width, height = 40, 30
pixels = bytes((x * 5 + y * 3 + c * 60) % 256 for y in range(height) for x in range(width)
               for c in range(3))
for shared in (True, False):
    client = Client(shared_memory=shared)
    result = client.cloak_pixels(pixels, width, height, 3, options={"steps": 1, "samples": 1})
    print(client.last_transfer, type(result.pixels).__name__, bytes(result.pixels) == pixels)
"""


def test_the_client_runs_on_python_38_and_the_system_python(tmp_path):
    pythons = [p for p in (_python38(), SYSTEM_PYTHON) if p and os.path.exists(p)]
    if not pythons:
        pytest.skip("SKIPPED: neither a Python 3.8 nor /usr/bin/python3 is on this machine")
    if _python38() is None:
        import warnings

        warnings.warn("SKIPPED: no Python 3.8 here; checked the system Python only", stacklevel=1)
    base, _ = make_settings()
    env = _client_env(base, FACECLOAK_ENGINE_PYTHON=sys.executable)
    source = Path(__file__).resolve().parents[2] / "shared/data/photos/skimage/camera.png"
    try:
        for python in pythons:
            assert _run(python, ["--no-start", "status"], env).returncode == 1
            started = _run(python, ["start"], env, timeout=120)
            assert started.returncode == 0, started.stderr
            assert "running, pid" in started.stdout
            if source.exists():
                out = tmp_path / f"{Path(python).name}.png"
                done = _run(python, ["scrub", str(source), str(out)], env)
                assert done.returncode == 0 and out.exists(), done.stderr
            command = [python, "-I", "-c", _PIXELS_SCRIPT, str(BRIDGES)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                                  check=False)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout.split() == ["shm", "mmap", "True", "frames", "bytearray", "True"]
            assert _run(python, ["stop"], env).stdout.strip() == "stopped"
            assert wait_gone(str(base / "facecloak" / paths.SOCKET_NAME))
    finally:
        _run(SYSTEM_PYTHON, ["stop"], env)
        shutil.rmtree(base, ignore_errors=True)


def test_engine_not_installed_says_how_to_install(tmp_path):
    check = subprocess.run([SYSTEM_PYTHON, "-I", "-c", "import facecloak"], capture_output=True,
                           check=False)  # fmt: skip
    if check.returncode == 0:
        pytest.skip("SKIPPED: the system Python has facecloak installed")
    done = _run(SYSTEM_PYTHON, ["cloak", "in.jpg", "out.jpg"], _client_env(tmp_path))
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "engine is not installed" in line and "scripts/setup-env.sh" in line
    assert "FACECLOAK_ENGINE_PYTHON" in line and "bridge.conf" in line

    config = tmp_path / "config" / "facecloak" / "bridge.conf"
    config.parent.mkdir(parents=True)
    config.write_text("[engine]\npython = /nowhere/python3\n")
    done = _run(SYSTEM_PYTHON, ["cloak", "in.jpg", "out.jpg"], _client_env(tmp_path))
    assert "/nowhere/python3" in _one_error_line(done) and str(config) in done.stderr


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_engine_that_fails_to_start_names_its_logs(tmp_path):
    fake = _fake_python(
        tmp_path, "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 3"
    )
    done = _run(SYSTEM_PYTHON, ["cloak", "in.jpg", "out.jpg"],
                _client_env(tmp_path, FACECLOAK_ENGINE_PYTHON=fake))  # fmt: skip
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "failed to start (exit code 3)" in line and "No module named 'torch'" in line
    assert str(tmp_path / "state" / "facecloak" / "server.log") in line


def test_engine_that_never_answers_times_out_and_is_stopped(tmp_path):
    pid_file = tmp_path / "pid"
    fake = _fake_python(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60")
    config = tmp_path / "config" / "facecloak" / "bridge.conf"
    config.parent.mkdir(parents=True)
    config.write_text("[engine]\nstart_timeout = 1\n")
    started = time.monotonic()
    done = _run(SYSTEM_PYTHON, ["scrub", "in.jpg", "out.jpg"],
                _client_env(tmp_path, FACECLOAK_ENGINE_PYTHON=fake))  # fmt: skip
    assert done.returncode == 1 and time.monotonic() - started < 20
    assert "did not answer within 1 s" in _one_error_line(done)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, "the stuck engine was left running"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_usage_errors_exit_2_with_one_line(tmp_path):
    for args in (["cloak", "only-one"], ["frobnicate"], ["cloak", "a", "b", "--seed", "x"]):
        done = _run(SYSTEM_PYTHON, args, _client_env(tmp_path))
        assert done.returncode == 2, args
        assert _one_error_line(done)


def test_settings_come_from_xdg_folders_and_the_config_file(tmp_path):
    config = tmp_path / "facecloak" / "bridge.conf"
    config.parent.mkdir()
    config.write_text(
        "[engine]\npython = /opt/engine/bin/python\nidle_timeout = 30\nshared_memory = no\n"
    )
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "XDG_STATE_HOME": str(tmp_path / "state")}  # fmt: skip
    settings = Settings.from_environ(env)
    assert settings.runtime_dir == str(tmp_path / "facecloak")
    assert settings.state_dir == str(tmp_path / "state" / "facecloak")
    assert settings.config_python == "/opt/engine/bin/python"
    assert settings.serve_args == ["--idle-timeout", "30.0"]
    assert not settings.shared_memory and not Client(settings).shared_memory
    assert Settings.from_environ({"XDG_CONFIG_HOME": str(tmp_path / "none")}).shared_memory
    fallback = paths.runtime_dir({"XDG_RUNTIME_DIR": "relative/path"})
    assert fallback.endswith(f"facecloak-{os.getuid()}") and os.path.isabs(fallback)
