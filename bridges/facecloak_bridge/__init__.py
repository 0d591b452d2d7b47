"""facecloak_bridge: how GIMP, darktable and scripts reach the local facecloak engine server.

Standard library only, Python 3.8 or newer, so that it runs inside GIMP's and the system's
Python, where PyTorch is not installed. The engine runs once per user as ``facecloak serve``
and keeps its models loaded; this package finds it or starts it. Protocol: docs/protocol.md.

    from facecloak_bridge import Client
    client = Client()
    report = client.cloak_file("in.jpg", "out.jpg", mode="mid")
    result = client.cloak_pixels(rgba_bytes, width, height, 4, bit_depth=8)
"""

from facecloak_bridge.client import Client, PixelResult
from facecloak_bridge.errors import (
    BridgeError,
    Cancelled,
    EngineNotInstalled,
    EngineStartFailed,
    EngineTimeout,
    RequestFailed,
    ServerLost,
)
from facecloak_bridge.launcher import Settings

__version__ = "0.1.0"

__all__ = [
    "BridgeError",
    "Cancelled",
    "Client",
    "EngineNotInstalled",
    "EngineStartFailed",
    "EngineTimeout",
    "PixelResult",
    "RequestFailed",
    "ServerLost",
    "Settings",
    "__version__",
]
