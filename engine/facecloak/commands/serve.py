"""``facecloak serve``: the local engine server that plug-ins and ``facecloak-client`` use.

Normally started on demand by the bridge client; running it by hand is for debugging. A second
start finds the first through its lock and exits with status 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecloak.commands._common import EXIT_FAILED, EXIT_OK, UsageError, error_line

NAME = "serve"
HELP = "run the local engine server (normally started on demand by plug-ins)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime-dir", type=Path, help="socket folder (default $XDG_RUNTIME_DIR/facecloak)"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="log folder (default $XDG_STATE_HOME/facecloak)"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=600.0, metavar="SECONDS",
        help="exit after this long without work (default 600; 0: never)",
    )  # fmt: skip
    parser.add_argument("--queue-length", type=int, default=32, help="most jobs waiting")
    parser.add_argument("--max-megapixels", type=float, default=100.0, help="per request")
    parser.add_argument("--max-payload-mb", type=float, default=1024.0, help="per request")
    parser.add_argument("--models", default="sface,dlib", help="recogniser ensemble")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument(
        "--batch-photos", type=int, default=4, metavar="N",
        help="photos cloaked together, their faces batched (1: one after another)",
    )  # fmt: skip
    parser.add_argument(
        "--tcp-port", type=int, metavar="PORT",
        help="also listen on 127.0.0.1:PORT (0: any free port) with a token (see docs)",
    )  # fmt: skip
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING"), default="INFO")


def run(args: argparse.Namespace) -> int:
    from facecloak_bridge import paths

    from facecloak.server.app import AlreadyRunning, ServeConfig, serve
    from facecloak.server.paths import UnsafeFolderError
    from facecloak.server.validation import Limits

    if args.idle_timeout < 0 or args.queue_length < 1:
        raise UsageError("--idle-timeout must be >= 0 and --queue-length >= 1")
    if args.batch_photos < 1:
        raise UsageError("--batch-photos must be at least 1")
    if args.max_megapixels <= 0 or args.max_payload_mb <= 0:
        raise UsageError("--max-megapixels and --max-payload-mb must be positive")
    if args.tcp_port is not None and not 0 <= args.tcp_port <= 65535:
        raise UsageError("--tcp-port must be between 0 and 65535")
    config = ServeConfig(
        runtime_dir=(args.runtime_dir or Path(paths.runtime_dir())).absolute(),
        state_dir=(args.state_dir or Path(paths.state_dir())).absolute(),
        idle_timeout=args.idle_timeout,
        queue_length=args.queue_length,
        limits=Limits(
            max_pixels=int(args.max_megapixels * 1e6),
            max_payload_bytes=int(args.max_payload_mb * (1 << 20)),
        ),
        models=[name for name in args.models.split(",") if name],
        device=args.device,
        batch_photos=args.batch_photos,
        tcp_port=args.tcp_port,
        log_level=args.log_level,
    )
    socket_path = config.runtime_dir / paths.SOCKET_NAME
    print(f"facecloak server on {socket_path} (log: {config.state_dir / paths.LOG_NAME})")
    sys.stdout.flush()
    try:
        serve(config)
    except AlreadyRunning as running:
        print(f"facecloak: {running} on {socket_path}; nothing to do")
        return EXIT_OK
    except (UnsafeFolderError, OSError) as error:
        error_line(error)
        return EXIT_FAILED
    return EXIT_OK
