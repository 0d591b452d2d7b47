"""Where the per-user server lives: runtime folder, socket, lock, token, log and settings.

Client and server compute these the same way (from the XDG variables), so a plug-in finds the
server that the command line started. Creating the folders safely is the server's job.
"""

from __future__ import annotations

import os
import tempfile
from typing import Mapping

SOCKET_NAME = "server.sock"
LOCK_NAME = "server.lock"
TCP_NAME = "tcp.json"
LOG_NAME = "server.log"
START_LOG_NAME = "server-start.log"
CONFIG_NAME = "bridge.conf"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def runtime_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_RUNTIME_DIR/facecloak``, or ``<tmp>/facecloak-<uid>`` where that is unset."""
    base = _env(environ).get("XDG_RUNTIME_DIR", "")
    if base and os.path.isabs(base) and os.path.isdir(base):
        return os.path.join(base, "facecloak")
    return os.path.join(tempfile.gettempdir(), f"facecloak-{os.getuid()}")


def state_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_STATE_HOME/facecloak`` (default ``~/.local/state/facecloak``): the server's logs."""
    base = _env(environ).get("XDG_STATE_HOME", "")
    if not (base and os.path.isabs(base)):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "facecloak")


def config_file(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CONFIG_HOME/facecloak/bridge.conf`` (default under ``~/.config``)."""
    base = _env(environ).get("XDG_CONFIG_HOME", "")
    if not (base and os.path.isabs(base)):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "facecloak", CONFIG_NAME)
