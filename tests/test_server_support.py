"""Helpers for the server and bridge tests (no tests here): real servers in throw-away folders.

Each server gets its own short runtime folder under /tmp (Unix socket paths are limited to 107
bytes), so tests never meet a user's own server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecloak_bridge import Client, Settings, wire

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BRIDGES = PROJECT_ROOT / "bridges"
# These tests check plumbing, not protection: the cheapest budget that still cloaks.
CHEAP = {"steps": 3, "samples": 1, "extra_steps": 0}
CHEAP_ARGS = ["--mode", "low", "--steps", "3", "--samples", "1", "--extra-steps", "0"]


@dataclass
class RunningServer:
    base: Path
    settings: Settings
    client: Client

    @property
    def runtime_dir(self) -> Path:
        return Path(self.settings.runtime_dir)

    @property
    def socket_path(self) -> str:
        return self.settings.socket_path

    @property
    def log_path(self) -> Path:
        return Path(self.settings.log_path)

    def pid(self) -> int:
        return int(self.client.health()["pid"])


def make_settings(idle: float = 300.0, extra: tuple[str, ...] = ()) -> tuple[Path, Settings]:
    """Settings for a private server; the base folder is 0711 so other users can traverse it."""
    base = Path(tempfile.mkdtemp(prefix="fc", dir="/tmp"))
    base.chmod(0o711)
    settings = Settings(
        runtime_dir=str(base / "facecloak"),
        state_dir=str(base / "state"),
        engine_python=sys.executable,
        serve_args=["--idle-timeout", str(idle), *extra],
        start_timeout=90.0,
    )
    return base, settings


def start_server(idle: float = 300.0, extra: tuple[str, ...] = ()) -> RunningServer:
    """Start a real server through the bridge (as a plug-in would) and wait for its models."""
    base, settings = make_settings(idle, extra)
    server = RunningServer(base, settings, Client(settings))
    wait_for_engine(server.client)
    return server


def wait_for_engine(client: Client, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        health = client.health()
        if health["engine"] != "loading" or time.monotonic() > deadline:
            assert health["engine"] == "ready", health
            return health
        time.sleep(0.1)


def stop_server(server: RunningServer) -> None:
    with contextlib.suppress(Exception):
        server.client.shutdown()
    wait_gone(server.socket_path)
    shutil.rmtree(server.base, ignore_errors=True)


def wait_gone(path: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def raw_exchange(
    socket_path: str, header: dict[str, Any] | None = None, payload: bytes | None = None,
    raw: bytes | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Send one frame (or raw bytes) on a fresh connection; every reply header until close."""
    replies: list[dict[str, Any]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(socket_path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if raw is not None:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
            else:
                assert header is not None
                wire.send_frame(sock, header, payload)
        while True:
            try:
                reply, size = wire.read_header(sock)
                if size:
                    wire.read_payload(sock, size)
            except (wire.FrameError, ConnectionResetError):
                return replies
            replies.append(reply)
            if reply.get("type") in ("result", "error") and raw is None:
                return replies


def error_code(replies: list[dict[str, Any]]) -> str | None:
    """The error code of the last reply, if it is an error."""
    if replies and replies[-1].get("type") == "error":
        return replies[-1]["error"]["code"]
    return None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
