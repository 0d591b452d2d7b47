"""``facecloak scrub``: remove identifying metadata from photos without touching the pixels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecloak import __version__
from facecloak.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    error_line,
    output_paths,
    write_json_atomically,
)

NAME = "scrub"
HELP = "remove identifying metadata (GPS, camera, dates, thumbnails, XMP) losslessly"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", type=Path)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, help="output file (one input only)")
    where.add_argument("--output-dir", type=Path, help="folder for the outputs (same names)")
    where.add_argument(
        "--in-place", action="store_true", help="replace each input with its scrubbed version"
    )
    where.add_argument(
        "--check", action="store_true",
        help="only list the identifying metadata each file carries (changes nothing; "
        "exit code 1 when any is found)",
    )  # fmt: skip
    parser.add_argument(
        "--sidecars", choices=("report", "keep", "delete"), default="report",
        help="XMP sidecars next to an input (photo.jpg.xmp, photo.xmp): report them "
        "(default), keep them silently, or delete them after a successful scrub",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="REPORT", help="write a JSON report")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    from facecloak.scrub import ScrubError, check_file, scrub_file

    if args.check:
        return _check(args, check_file, ScrubError)
    if args.in_place:
        outputs: list[Path | None] = [None] * len(args.inputs)
    elif args.output is None and args.output_dir is None:
        raise UsageError("say where to write: -o FILE, --output-dir DIR or --in-place")
    else:
        outputs = list(output_paths(args.inputs, args.output, args.output_dir))
    results: list[dict[str, object]] = []
    failed = False
    for source, destination in zip(args.inputs, outputs, strict=True):
        try:
            report = scrub_file(
                source, destination, overwrite=args.overwrite, in_place=args.in_place,
                sidecars=args.sidecars,
            )  # fmt: skip
        except ScrubError as error:
            error_line(error)
            results.append({"source": str(source), "ok": False, "error": str(error)})
            failed = True
            continue
        print(report.summary(), flush=True)
        for note in report.notes:
            print(f"  note: {note}", flush=True)
        for path in report.sidecars:
            state = "deleted" if path in report.sidecars_deleted else "kept"
            print(f"  sidecar {path}: {state}", flush=True)
        results.append({"ok": True, **report.to_dict()})
    _write_json(args.json, "scrub", results)
    return EXIT_FAILED if failed else EXIT_OK


def _check(args: argparse.Namespace, check_file, scrub_error: type[Exception]) -> int:
    results: list[dict[str, object]] = []
    dirty = False
    for source in args.inputs:
        try:
            findings = check_file(source)
        except scrub_error as error:
            error_line(error)
            results.append({"source": str(source), "ok": False, "error": str(error)})
            dirty = True
            continue
        dirty = dirty or bool(findings)
        status = f"{len(findings)} identifying tag(s)" if findings else "clean"
        print(f"{source}: {status}", flush=True)
        for finding in findings:
            print(f"  {finding}", flush=True)
        results.append(
            {"source": str(source), "ok": True, "findings": [vars(item) for item in findings]}
        )
    _write_json(args.json, "check", results)
    if dirty:
        print("facecloak: identifying metadata found", file=sys.stderr, flush=True)
    return EXIT_FAILED if dirty else EXIT_OK


def _write_json(path: Path | None, action: str, results: list[dict[str, object]]) -> None:
    if path is not None:
        write_json_atomically(path, {"version": __version__, "action": action, "files": results})
