"""``facecloak-client``: the bridge as a command, for darktable's Lua hook and for scripts.

Exit codes: 0 done, 1 the request failed (one line on stderr), 2 usage error, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from facecloak_bridge import __version__
from facecloak_bridge.client import Client
from facecloak_bridge.errors import BridgeError, Cancelled

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"facecloak-client: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facecloak-client", description="Talk to the local facecloak engine.")
    parser.add_argument("--version", action="version", version="facecloak-client " + __version__)
    parser.add_argument("--json", action="store_true", help="print the server's report as JSON")
    parser.add_argument("--no-start", action="store_true", help="never start a server")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    cloak = commands.add_parser("cloak", help="cloak the faces in one photo")
    cloak.add_argument("input")
    cloak.add_argument("output")
    cloak.add_argument("--mode", default="mid", help="low, mid or high (default mid)")
    cloak.add_argument("--seed", type=int, default=0)
    cloak.add_argument("--overwrite", action="store_true", help="replace an existing output")
    cloak.add_argument("--quality", type=int, help="JPEG quality (default 95)")
    cloak.add_argument("--steps", type=int, help="expert: optimisation steps")
    cloak.add_argument("--samples", type=int, help="expert: transformations per step")
    cloak.add_argument("--extra-steps", type=int, help="expert: most extra steps")
    cloak.add_argument("--dssim", type=float, help="expert: largest face-region (1-SSIM)/2")
    cloak.add_argument("--region-dssim", type=float, help="expert: the same over all it touches")
    cloak.add_argument("--photo-dssim", type=float, help="expert: the same over the whole photo")
    cloak.add_argument("--max-change", type=float, help="expert: largest change, 0-255 units")

    scrub = commands.add_parser("scrub", help="remove identifying metadata from one file")
    scrub.add_argument("input")
    scrub.add_argument("output", nargs="?")
    scrub.add_argument("--in-place", action="store_true", help="scrub the input file itself")
    scrub.add_argument("--overwrite", action="store_true", help="replace an existing output")
    scrub.add_argument("--sidecars", default="report", help="what to do with sidecar files")

    commands.add_parser("status", help="say whether a server runs, and its state")
    commands.add_parser("start", help="start the server if none is running")
    commands.add_parser("stop", help="stop the running server")
    return parser


def _cloak_options(args: argparse.Namespace) -> dict[str, Any]:
    names = ("steps", "samples", "extra_steps", "dssim", "region_dssim", "photo_dssim",
             "max_change")  # fmt: skip
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.quality is not None:
        options["jpeg_quality"] = args.quality
    return options


def _summary(report: dict[str, Any]) -> str:
    if "faces_found" in report:
        return "{} -> {}: {} face(s) found, {} cloaked".format(
            report.get("input"), report.get("output"), report.get("faces_found"),
            report.get("faces_cloaked"),
        )  # fmt: skip
    return "{} -> {}: scrubbed, {} item(s) removed".format(
        report.get("source"), report.get("destination"), len(report.get("removed") or [])
    )


def run(args: argparse.Namespace, cancelled: threading.Event) -> int:
    client = Client(autostart=not args.no_start)
    if args.command == "status":
        if not client.is_running():
            print(f"no facecloak server is running ({client.settings.socket_path})")
            return EXIT_FAILED
        print(json.dumps(client.health(), indent=2))
        return EXIT_OK
    if args.command == "start":
        health = client.health()
        print("facecloak server {} running, pid {}".format(health["version"], health["pid"]))
        return EXIT_OK
    if args.command == "stop":
        print("stopped" if client.shutdown() else "no facecloak server was running")
        return EXIT_OK
    if args.command == "cloak":
        report = client.cloak_file(
            args.input, args.output, mode=args.mode, seed=args.seed, overwrite=args.overwrite,
            options=_cloak_options(args), cancel=cancelled.is_set,
        )  # fmt: skip
    else:
        report = client.scrub_file(
            args.input, args.output, overwrite=args.overwrite, in_place=args.in_place,
            sidecars=args.sidecars, cancel=cancelled.is_set,
        )  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else _summary(report))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cancelled = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        cancelled.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        return run(args, cancelled)
    except Cancelled as error:
        print(f"facecloak-client: cancelled: {error}", file=sys.stderr)
        return EXIT_CANCELLED
    except BridgeError as error:
        print(f"facecloak-client: error: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
