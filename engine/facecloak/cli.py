"""``facecloak``: the command line.

Exit codes: 0 when every input succeeded, 1 when any input failed (the others are still done),
2 for usage errors. Errors are one line each and name the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from facecloak import __version__
from facecloak.budget import MODES, budget_for
from facecloak.engine import Engine, PhotoReport
from facecloak.progress import ProgressBar

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line itself (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facecloak", description="Cloak faces against facial recognition.")
    parser.add_argument("--version", action="version", version=f"facecloak {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    cloak = commands.add_parser("cloak", help="cloak the faces in photos")
    cloak.add_argument("inputs", nargs="+", metavar="INPUT", type=Path)
    where = cloak.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", type=Path, help="output file (one input only)")
    where.add_argument("--output-dir", type=Path, help="folder for the outputs (same names)")
    cloak.add_argument("--mode", choices=sorted(MODES), default="mid")
    cloak.add_argument("--seed", type=int, default=0)
    cloak.add_argument("--json", type=Path, metavar="REPORT", help="write a JSON report")
    cloak.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    cloak.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    cloak.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    cloak.add_argument(
        "--before-after", type=Path, metavar="PICTURE",
        help="also write original | cloaked | amplified difference (one input only)",
    )  # fmt: skip
    cloak.add_argument("--models", default="sface,dlib", help="recogniser ensemble")
    cloak.add_argument(
        "--objective", choices=("untargeted", "targeted"), default="untargeted",
        help=argparse.SUPPRESS,
    )  # fmt: skip
    expert = cloak.add_argument_group("expert overrides of the mode's budget")
    expert.add_argument("--dssim", type=float, help="largest face-region (1-SSIM)/2")
    expert.add_argument("--max-change", type=float, help="largest per-pixel change, 0-255 units")
    expert.add_argument("--steps", type=int, help="optimisation steps")
    expert.add_argument("--samples", type=int, help="random transformations per step")
    expert.add_argument(
        "--extra-steps", type=int, help="most extra steps for faces still weak (0: none)"
    )
    return parser


def _outputs(args: argparse.Namespace) -> list[Path]:
    """Where each input goes; checked before any model is loaded."""
    if args.output is not None:
        if len(args.inputs) != 1:
            raise UsageError("-o/--output takes one input; use --output-dir for several")
        return [args.output]
    folder: Path = args.output_dir
    if not folder.is_dir():
        raise UsageError(f"{folder}: output folder does not exist")
    names = [folder / source.name for source in args.inputs]
    if len(set(names)) != len(names):
        raise UsageError("two inputs share a file name; they would overwrite each other")
    return names


def _budget(args: argparse.Namespace):
    overrides = {
        "dssim": args.dssim,
        "max_change": None if args.max_change is None else args.max_change / 255.0,
        "steps": args.steps,
        "samples": args.samples,
        "extra_steps": args.extra_steps,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key, value in overrides.items():
        if value < 0 or (value == 0 and key != "extra_steps"):
            raise UsageError(f"--{key.replace('_', '-')} must be positive")
    return budget_for(args.mode).with_overrides(**overrides)


def _summary(report: PhotoReport) -> str:
    if not report.ok:
        return f"error: {report.error}"
    parts = [
        f"{report.input} -> {report.output}:",
        f"{len(report.faces)} face(s) found, {report.cloaked} cloaked",
    ]
    if report.skipped:
        reasons = sorted({face.reason for face in report.faces if not face.cloaked})
        parts.append(f"{report.skipped} skipped ({'; '.join(reasons)})")
    if report.note:
        parts.append(f"note: {report.note}")
    parts.append(f"{report.seconds:.1f} s")
    return " ".join(parts[:1]) + " " + ", ".join(parts[1:])


def run_cloak(args: argparse.Namespace) -> int:
    outputs = _outputs(args)
    budget = _budget(args)
    if args.before_after is not None and len(args.inputs) != 1:
        raise UsageError("--before-after takes one input")
    if not 1 <= args.quality <= 100:
        raise UsageError("--quality must be between 1 and 100")
    models = [name for name in args.models.split(",") if name]
    try:
        engine = Engine(models, device=args.device)
    except (ValueError, KeyError, RuntimeError) as error:
        print(f"facecloak: error: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    reports: list[PhotoReport] = []
    for index, (source, destination) in enumerate(zip(args.inputs, outputs, strict=True)):
        bar = ProgressBar(f"[{index + 1}/{len(outputs)}] {source.name}")
        report = engine.cloak_file(
            source, destination, budget, seed=args.seed, objective=args.objective,
            overwrite=args.overwrite, jpeg_quality=args.quality, progress=bar,
        )  # fmt: skip
        bar.close()
        reports.append(report)
        print(_summary(report), file=sys.stdout if report.ok else sys.stderr, flush=True)
        if report.ok and args.before_after is not None:
            _write_before_after(source, destination, args.before_after, args.overwrite)
    if args.json is not None:
        payload = {
            "version": __version__,
            "mode": budget.name,
            "seed": args.seed,
            "model_load_seconds": round(engine.load_seconds, 2),
            "photos": [report.to_dict() for report in reports],
        }
        temporary = args.json.with_name(f".{args.json.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(temporary, args.json)
    return EXIT_OK if all(report.ok for report in reports) else EXIT_FAILED


def _write_before_after(source: Path, destination: Path, picture: Path, overwrite: bool) -> None:
    from facecloak.imageio import ImageError, load_image
    from facecloak.preview import before_after

    try:
        before_after(
            load_image(source).pixels, load_image(destination).pixels, picture,
            overwrite=overwrite, protect=[source, destination],
        )  # fmt: skip
        print(f"before/after picture: {picture}")
    except ImageError as error:
        print(f"facecloak: error: {error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "cloak":
            return run_cloak(args)
    except UsageError as error:
        print(f"facecloak: error: {error} (see facecloak --help)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("facecloak: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
