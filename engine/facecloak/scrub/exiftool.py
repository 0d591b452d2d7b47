"""One long-running exiftool process (``-stay_open``), with a time limit on every command.

Starting Perl and exiftool costs ~0.2 s, far more than scrubbing a photo, so the process is
started once and kept.  A command that runs past its time limit (a malformed file can make
any parser slow) kills the process; the next command starts a fresh one.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import subprocess
import threading
import time

# At the end of its input a -stay_open exiftool does not exit: it polls for more, 100 times a
# second, for ever. A parent that dies without saying "-stay_open False" (killed, crashed)
# would leave it behind, so it is told to die with its parent. (The parent is the thread that
# started it: should that thread end first, the next command simply starts a new exiftool.)
_SETPRIV = shutil.which("setpriv")  # util-linux, on every Debian
_DIE_WITH_PARENT = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


class ExifToolError(Exception):
    """exiftool is missing, failed, or ran past its time limit."""


class ExifTool:
    """A ``-stay_open`` exiftool; :meth:`execute` runs one command and returns its output."""

    def __init__(
        self, executable: str | None = None, timeout: float = 30.0, *, disabled: bool = False
    ) -> None:
        # disabled=True behaves as if exiftool were not installed (tests of the fallback).
        self.executable = None if disabled else executable or shutil.which("exiftool")
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._counter = 0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.executable is not None

    def _start(self) -> subprocess.Popen[bytes]:
        if self.executable is None:
            raise ExifToolError("exiftool is not installed")
        return subprocess.Popen(
            [*_DIE_WITH_PARENT, self.executable, "-stay_open", "True", "-@", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "LC_ALL": "C"},
        )

    def execute(self, *args: str, timeout: float | None = None) -> tuple[str, str]:
        """Run one command; (stdout, stderr) as text.  Arguments must not contain newlines."""
        if any("\n" in arg for arg in args):
            raise ExifToolError("exiftool arguments cannot contain a newline")
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._start()
            self._counter += 1
            marker = f"{{ready{self._counter}}}"
            lines = [*args, "-echo4", marker, f"-execute{self._counter}", ""]
            process = self._process
            try:
                assert process.stdin is not None
                process.stdin.write("\n".join(lines).encode())
                process.stdin.flush()
                return self._collect(process, marker.encode(), timeout or self.timeout)
            except (OSError, ExifToolError):
                self._kill()
                raise

    def _collect(self, process: subprocess.Popen[bytes], marker: bytes, limit: float):
        assert process.stdout is not None and process.stderr is not None
        buffers = {process.stdout.fileno(): b"", process.stderr.fileno(): b""}
        pending = set(buffers)
        deadline = time.monotonic() + limit
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ExifToolError(f"exiftool took longer than {limit:g} s")
            ready, _, _ = select.select(list(pending), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ExifToolError("exiftool stopped unexpectedly")
                buffers[fd] += chunk
                if buffers[fd].rstrip().endswith(marker):
                    pending.discard(fd)
        out, err = (buffers[fd].rstrip()[: -len(marker)] for fd in buffers)
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def read_tags(self, path: str, timeout: float | None = None) -> list[tuple[str, object]]:
        """Every tag exiftool finds, as ("Group1:Tag", value) pairs, duplicates included."""
        out, err = self.execute("-j", "-a", "-G1", "-u", "-struct", path, timeout=timeout)
        if not out.strip():
            raise ExifToolError(_first_line(err) or "exiftool could not read the file")
        try:
            records = json.loads(out, object_pairs_hook=list)
        except json.JSONDecodeError as exc:
            raise ExifToolError(f"unreadable exiftool output ({exc})") from None
        return [(key, value) for key, value in records[0] if key != "SourceFile"]

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                process.wait(timeout=5)
            for stream in (process.stdin, process.stdout, process.stderr):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()

    def close(self) -> None:
        """Ask exiftool to exit (killing it if it does not)."""
        with self._lock:
            process = self._process
            if process is None:
                return
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                assert process.stdin is not None
                process.stdin.write(b"-stay_open\nFalse\n")
                process.stdin.flush()
                process.wait(timeout=5)
            self._kill()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


_shared: ExifTool | None = None
_shared_lock = threading.Lock()


def shared() -> ExifTool:
    """The process-wide exiftool (started on first use, closed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ExifTool()
            atexit.register(_shared.close)
        return _shared
