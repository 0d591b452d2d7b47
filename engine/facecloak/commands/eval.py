"""``facecloak eval``: the tracker's experiment on a folder of people (see docs/evaluation.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facecloak.budget import MODES
from facecloak.commands._common import EXIT_FAILED, EXIT_OK, UsageError, error_line

NAME = "eval"
HELP = "measure protection the way a tracker would (train on cloaked, test on clean)"
# Recognisers of families no cloak is made with: FaceNet (Inception-ResNet) and the HSE
# MobileNet (fetched from the npm registry at install time, so possibly missing).
DEFAULT_UNSEEN = ("facenet", "hse")
DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "faces" / "lfw62"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from facecloak.commands.cloak import add_budget_overrides

    parser.add_argument(
        "data", nargs="?", type=Path, default=None,
        help=f"folder with one sub-folder per person (default: {DEFAULT_DATA} when present)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="folder for the report")
    parser.add_argument("--users", type=int, default=4, help="protected users (default 4)")
    parser.add_argument("--train", type=int, default=6, help="cloaked photos per user")
    parser.add_argument("--test", type=int, default=12, help="clean test photos per user")
    parser.add_argument("--others", type=int, default=8, help="clean photos per other person")
    parser.add_argument("--modes", default="mid", help="comma-separated modes (default mid)")
    parser.add_argument(
        "--models", default="sface,dlib",
        help="the ensemble: recognisers to cloak with, each also a tracker (default sface,dlib)",
    )  # fmt: skip
    parser.add_argument(
        "--unseen", default=None,
        help="tracker models never cloaked with: pure transfer (default: FaceNet and the HSE "
        "MobileNet, where installed; '' for none)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument(
        "--white-box-only", action="store_true",
        help="skip the leave-one-out cloaks (quicker, but says nothing about unseen models)",
    )  # fmt: skip
    add_budget_overrides(parser)


def _settings(args: argparse.Namespace):
    from facecloak.commands.cloak import budget_overrides
    from facecloak.evaluation.experiment import EvalSettings

    data = args.data if args.data is not None else DEFAULT_DATA
    if not data.is_dir():
        raise UsageError(f"{data}: no such folder of people (give one: facecloak eval DATA)")
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"unknown mode {','.join(unknown) or '(none)'}; use {sorted(MODES)}")
    for name in ("users", "train", "test", "others"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    overrides = budget_overrides(args)  # every expert flag given, checked once
    return EvalSettings(
        data=data, users=args.users, train=args.train, test=args.test,
        others_per_person=args.others, modes=modes,
        recognisers=tuple(m for m in args.models.split(",") if m),
        unseen=_unseen(args.unseen),
        seed=args.seed, device=args.device, overrides=overrides,
        leave_one_out=not args.white_box_only,
    )  # fmt: skip


def _unseen(given: str | None) -> tuple[str, ...]:
    """The unseen models asked for, or the default ones this machine has (a missing one is
    named on stderr: its column would otherwise vanish from the report without a word)."""
    if given is not None:
        return tuple(m for m in given.split(",") if m)
    from facecloak.models.registry import get, split_installed

    present, missing = split_installed(DEFAULT_UNSEEN)
    for name in missing:
        print(
            f"facecloak eval: WARNING: the {name} recogniser is not installed, so no column "
            f"judges with it (run: {get(name).install_hint})",
            file=sys.stderr,
        )
    return present


def _check_extras() -> None:
    """scikit-learn and matplotlib come with the ``eval`` extra, not the core install."""
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(
            f"facecloak eval needs {' and '.join(missing)}: "
            "run: python -m pip install 'facecloak[eval]'"
        )


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        _check_extras()
    except RuntimeError as error:
        error_line(error)
        return EXIT_FAILED
    out: Path = args.out
    report = out / "report.md"
    if report.exists() and not args.overwrite:
        raise UsageError(f"{report} exists; add --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    from facecloak.evaluation.experiment import Experiment
    from facecloak.evaluation.report import markdown, protection_plot
    from facecloak.preview import before_after
    from facecloak.progress import ProgressBar

    bar = ProgressBar("eval: cloaking train photos")
    try:
        experiment = Experiment(settings, progress=bar)
        results = experiment.run()
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as error:
        bar.close()
        error_line(error)
        return EXIT_FAILED
    bar.close()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.write_text(markdown(results))
    protection_plot(results, out / "protection.png")
    if experiment.example is not None:
        before_after(*experiment.example, out / "example.png", overwrite=True)
    print(markdown(results))
    print(f"report: {report}, {out / 'results.json'}, {out / 'protection.png'}")
    return EXIT_OK
