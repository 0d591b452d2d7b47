"""The server's life: take the lock, listen, run workers, exit when idle or asked to."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecloak_bridge import paths, shm, wire

from facecloak import __version__
from facecloak.server import handlers
from facecloak.server.batching import JobStream
from facecloak.server.connection import Connection
from facecloak.server.jobs import JobQueue
from facecloak.server.listener import bind_tcp, bind_unix
from facecloak.server.lock import InstanceLock
from facecloak.server.logsetup import setup_logging
from facecloak.server.paths import ensure_private_dir
from facecloak.server.validation import Limits
from facecloak.server.worker import StreamWorker, Worker


@dataclass
class ServeConfig:
    """Everything ``facecloak serve`` can be told."""

    runtime_dir: Path
    state_dir: Path
    idle_timeout: float = 600.0  # seconds without connections or jobs; 0: never exit
    queue_length: int = 32
    max_connections: int = 64
    limits: Limits = field(default_factory=Limits)
    max_held_bytes: int = 2 << 30  # pixel payloads held at once, all requests together
    models: list[str] = field(default_factory=lambda: ["sface", "dlib"])
    device: str = "cpu"
    # Photos cloaked together, their faces batched (1: one after another); see bench/batching.py
    batch_photos: int = 4
    tcp_port: int | None = None
    log_level: str = "INFO"


class AlreadyRunning(Exception):
    """Another server of this user holds the lock."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"a facecloak server is already running (pid {pid})")
        self.pid = pid


class Server:
    """Owns the listeners, the queue, the workers and the engine."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.uid = os.getuid()
        self.pid = os.getpid()
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self.queue = JobQueue(config.queue_length, config.max_held_bytes)
        self.socket_path = config.runtime_dir / paths.SOCKET_NAME
        self.log_path = config.state_dir / paths.LOG_NAME
        self.log = logging.getLogger("facecloak.server")
        self.host = handlers.EngineHost(config.models, config.device, self.log)
        self._connections = 0
        self._last_busy = time.monotonic()
        self._count_lock = threading.Lock()
        self._listeners: dict[socket.socket, str | None] = {}  # socket -> TCP token

    def health(self) -> dict[str, Any]:
        return {
            "server": "facecloak",
            "version": __version__,
            "protocol": wire.PROTOCOL_VERSION,
            "features": [shm.FEATURE] if shm.available() else [],  # what protocol 1 may use
            "pid": self.pid,
            "engine": self.host.state,
            "models": self.config.models,
            "uptime": round(time.monotonic() - self.started, 2),
            "idle_timeout": self.config.idle_timeout,
            "socket": str(self.socket_path),
            "log": str(self.log_path),
            **self.queue.counts(),
        }

    def request_stop(self, why: str) -> None:
        if not self.stopping.is_set():
            self.log.info("stopping: %s", why)
            self.stopping.set()
            self._withdraw()
            self.queue.close()

    def _withdraw(self) -> None:
        """Remove the TCP token file, then the socket file.

        New clients must not connect to a server on its way out: without the socket file they
        start a new one, which waits for this one's lock. The token goes first, so a client
        that sees no socket also finds no stale TCP address.
        """
        for path in (self.config.runtime_dir / paths.TCP_NAME, self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _lock(self) -> InstanceLock:
        """Take the per-user lock; a server that is stopping is waited for (10 s at most)."""
        lock = InstanceLock(self.config.runtime_dir / paths.LOCK_NAME)
        deadline = time.monotonic() + 10.0
        while not lock.acquire():
            if self.socket_path.exists() or time.monotonic() > deadline:
                raise AlreadyRunning(lock.holder())
            time.sleep(0.05)
        return lock

    def run(self) -> None:
        """Serve until idle for ``idle_timeout`` or asked to stop; raises AlreadyRunning."""
        ensure_private_dir(self.config.state_dir)
        setup_logging(self.log_path, self.config.log_level)
        ensure_private_dir(self.config.runtime_dir)
        lock = self._lock()
        try:
            self._listeners[bind_unix(self.socket_path)] = None
            if self.config.tcp_port is not None:
                tcp, token = bind_tcp(
                    self.config.tcp_port, self.config.runtime_dir / paths.TCP_NAME
                )
                self._listeners[tcp] = token
                self.log.info("also listening on 127.0.0.1:%d (token file)", tcp.getsockname()[1])
            self.log.info(
                "facecloak %s serving on %s (pid %d)", __version__, self.socket_path, self.pid
            )
            stream = JobStream(self.host, self.config.batch_photos, self.log)
            StreamWorker("engine", self.queue, stream, self.log, self.host.load).start()
            Worker("light", self.queue, handlers.scrub_file, self.log).start()
            self._accept_loop()
        finally:
            self.queue.close()
            for listener in self._listeners:
                listener.close()
            self._withdraw()
            lock.release()
            self.log.info("stopped")

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            readable, _, _ = select.select(list(self._listeners), [], [], 0.5)
            for listener in readable:
                with contextlib.suppress(OSError):
                    sock, _ = listener.accept()
                    self._start_connection(sock, self._listeners[listener])
            if self._idle_too_long():
                self.request_stop(f"idle for {self.config.idle_timeout:g} s")

    def _start_connection(self, sock: socket.socket, token: str | None) -> None:
        with self._count_lock:
            if self._connections >= self.config.max_connections:
                with contextlib.suppress(OSError):
                    wire.send_frame(sock, wire.error_header(None, "busy", "too many connections"))
                sock.close()
                return
            self._connections += 1
        threading.Thread(target=self._serve, args=(sock, token), daemon=True).start()

    def _serve(self, sock: socket.socket, token: str | None) -> None:
        sock.setblocking(True)
        sock.settimeout(max(60.0, self.config.idle_timeout) or None)
        try:
            Connection(sock, self, token).serve()
        finally:
            with self._count_lock:
                self._connections -= 1
                self._last_busy = time.monotonic()

    def _idle_too_long(self) -> bool:
        with self._count_lock:
            if self._connections or self.queue.pending():
                self._last_busy = time.monotonic()
                return False
            idle = time.monotonic() - self._last_busy
        return self.config.idle_timeout > 0 and idle > self.config.idle_timeout


def serve(config: ServeConfig) -> Server:
    """Run a server in this process until it stops; SIGTERM and SIGINT stop it cleanly."""
    server = Server(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.request_stop("signal"))
    server.run()
    return server
