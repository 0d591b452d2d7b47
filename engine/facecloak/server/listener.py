"""The server's sockets and who may use them.

The Unix socket (mode 0600, in a 0700 folder) is the only listener by default; the kernel tells
the server each peer's user id (``SO_PEERCRED``) and any other user is refused. A TCP listener
exists only when asked for: loopback only, and every connection must show a random token that
is kept in a 0600 file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import struct
from pathlib import Path

_UCRED = struct.Struct("3i")  # pid, uid, gid
_MAX_UNIX_PATH = 107


def bind_unix(path: Path) -> socket.socket:
    """Listen on ``path``; a leftover socket file of a dead server is replaced."""
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise OSError(f"socket path too long for a Unix socket ({path}); set XDG_RUNTIME_DIR")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # only the lock holder gets here, so nobody else listens on it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket file is born 0600: no window with looser modes
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old_mask)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(data)[1]


def bind_tcp(port: int, token_path: Path) -> tuple[socket.socket, str]:
    """Listen on 127.0.0.1:``port`` (0: any free port); the port and token go to a 0600 file."""
    sock = socket.create_server(("127.0.0.1", port))
    token = secrets.token_urlsafe(32)
    temporary = token_path.with_name(f".{token_path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"host": "127.0.0.1", "port": sock.getsockname()[1], "token": token}, handle)
    os.replace(temporary, token_path)
    return sock, token
