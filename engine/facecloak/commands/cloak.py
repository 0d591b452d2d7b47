"""``facecloak cloak``: cloak the faces in photos and write clean copies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facecloak import __version__
from facecloak.budget import MODES, CloakBudget, budget_for
from facecloak.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    error_line,
    output_paths,
    write_json_atomically,
)

if TYPE_CHECKING:
    from facecloak.engine import PhotoReport

NAME = "cloak"
HELP = "cloak the faces in photos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", type=Path)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", type=Path, help="output file (one input only)")
    where.add_argument("--output-dir", type=Path, help="folder for the outputs (same names)")
    parser.add_argument("--mode", choices=sorted(MODES), default="mid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, metavar="REPORT", help="write a JSON report")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument(
        "--before-after", type=Path, metavar="PICTURE",
        help="also write original | cloaked | amplified difference (one input only)",
    )  # fmt: skip
    parser.add_argument("--models", default="sface,dlib", help="recogniser ensemble")
    parser.add_argument(
        "--objective", choices=("untargeted", "targeted"), default="untargeted",
        help=argparse.SUPPRESS,
    )  # fmt: skip
    add_budget_overrides(parser)


def add_budget_overrides(parser: argparse.ArgumentParser) -> None:
    """The expert overrides of a mode's budget (shared with ``facecloak eval``)."""
    expert = parser.add_argument_group("expert overrides of the mode's budget")
    expert.add_argument("--dssim", type=float, help="largest face-region (1-SSIM)/2")
    expert.add_argument(
        "--region-dssim", type=float,
        help="largest (1-SSIM)/2 over all the change touches (default: --dssim's)",
    )  # fmt: skip
    expert.add_argument(
        "--photo-dssim", type=float,
        help="largest (1-SSIM)/2 over the whole photo, shared by its regions (default: 0.005 in"
        " low and mid, none in high; 0.5 lifts it)",
    )  # fmt: skip
    expert.add_argument(
        "--photo-faces", type=int,
        help="the photo limit binds only in photos of at most this many faces (default: 3)",
    )  # fmt: skip
    expert.add_argument("--max-change", type=float, help="largest per-pixel change, 0-255 units")
    expert.add_argument("--steps", type=int, help="optimisation steps")
    expert.add_argument("--samples", type=int, help="random transformations per step")
    expert.add_argument(
        "--extra-steps", type=int, help="most extra steps for faces still weak (0: none)"
    )


def budget_from_args(args: argparse.Namespace) -> CloakBudget:
    """The mode's budget with the expert overrides applied and checked."""
    return budget_for(args.mode).with_overrides(**budget_overrides(args))


def budget_overrides(args: argparse.Namespace) -> dict[str, float | int]:
    """The budget settings the expert flags set, in the budget's units, checked; what
    ``facecloak eval`` applies to every mode it runs."""
    overrides = {
        "dssim": args.dssim,
        "region_dssim": args.region_dssim,
        "photo_dssim": args.photo_dssim,
        "photo_faces": args.photo_faces,
        "max_change": None if args.max_change is None else args.max_change / 255.0,
        "steps": args.steps,
        "samples": args.samples,
        "extra_steps": args.extra_steps,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key, value in overrides.items():
        if value < 0 or (value == 0 and key != "extra_steps"):
            raise UsageError(f"--{key.replace('_', '-')} must be positive")
    return overrides


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


def run(args: argparse.Namespace) -> int:
    from facecloak.engine import Engine
    from facecloak.progress import ProgressBar

    outputs = output_paths(args.inputs, args.output, args.output_dir)
    budget = budget_from_args(args)
    if args.before_after is not None and len(args.inputs) != 1:
        raise UsageError("--before-after takes one input")
    if not 1 <= args.quality <= 100:
        raise UsageError("--quality must be between 1 and 100")
    models = [name for name in args.models.split(",") if name]
    try:
        engine = Engine(models, device=args.device)
    except (ValueError, KeyError, RuntimeError) as error:
        error_line(error)
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
        write_json_atomically(
            args.json,
            {
                "version": __version__,
                "mode": budget.name,
                "seed": args.seed,
                "model_load_seconds": round(engine.load_seconds, 2),
                "photos": [report.to_dict() for report in reports],
            },
        )
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
        error_line(error)
