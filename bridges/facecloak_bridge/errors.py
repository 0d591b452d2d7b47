"""What can go wrong between a plug-in and the engine, each with a message a user can act on."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every bridge error; ``str()`` is one line meant for the user."""

    code = "bridge_error"


class EngineNotInstalled(BridgeError):
    """No Python with the facecloak engine was found (the message says how to install it)."""

    code = "engine_not_installed"


class EngineStartFailed(BridgeError):
    """The server process exited while starting (the message names its log)."""

    code = "engine_start_failed"


class EngineTimeout(BridgeError):
    """The server did not start, or stopped answering, within the allowed time."""

    code = "timed_out"


class ServerLost(BridgeError):
    """The server died in the middle of a request, again after one restart and retry."""

    code = "server_lost"


class Cancelled(BridgeError):
    """The request was cancelled (by the caller or by the server shutting down)."""

    code = "cancelled"


class RequestFailed(BridgeError):
    """The server refused or failed this one request; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
