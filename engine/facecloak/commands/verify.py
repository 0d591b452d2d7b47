"""``facecloak verify ORIGINAL CLOAKED``: per face, would each recogniser still match it?"""

from __future__ import annotations

import argparse
from pathlib import Path

from facecloak.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    error_line,
    write_json_atomically,
)

DEFAULT_MODELS = ("sface", "dlib", "facenet", "hse")
NAME = "verify"
HELP = "check a cloaked photo against its original, as a tracker would"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("original", type=Path, metavar="ORIGINAL")
    parser.add_argument("cloaked", type=Path, metavar="CLOAKED")
    parser.add_argument("--json", type=Path, metavar="REPORT", help="write a JSON report")
    parser.add_argument(
        "--picture", type=Path, help="write original | cloaked | amplified difference"
    )
    parser.add_argument(
        "--models", default=None,
        help="recognisers to check with (default: the cloak's two, and FaceNet and the HSE "
        "MobileNet, which no cloak is made with, where installed)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing picture")


def _lines(report) -> list[str]:
    lines = [f"{report.original} -> {report.cloaked}: {len(report.faces)} face(s)"]
    for number, face in enumerate(report.faces, 1):
        head = f"  face {number} at {face.box[0]},{face.box[1]} ({face.box[2]}x{face.box[3]} px)"
        if not face.found_in_cloaked:
            lines.append(f"{head}: not found in the cloaked photo (a tracker misses it too)")
            continue
        lines.append(f"{head}: face SSIM {face.ssim:.4f}")
        for name, model in face.models.items():
            relation = ">=" if model["measure"] == "cosine similarity" else "<="
            verdict = "yes" if model["would_still_match"] else "no"
            lines.append(
                f"    {name:6} {model['measure']} {model['similarity']:+.3f} "
                f"(match if {relation} {model['threshold']}): would still match: {verdict}"
            )
    if report.protected:
        lines.append("protected: yes")
    else:
        matching = sorted(
            {name for face in report.faces for name, m in face.models.items()
             if m["would_still_match"]}
        )  # fmt: skip
        lines.append(f"protected: NO, some face still matches under {', '.join(matching)}")
    return lines


def run(args: argparse.Namespace) -> int:
    for path in (args.original, args.cloaked):
        if not path.exists():
            raise UsageError(f"{path}: no such file")
    from facecloak.evaluation.verify import VerifyError, verify
    from facecloak.imageio import ImageError
    from facecloak.models._packages import ModelFileMissing
    from facecloak.preview import before_after

    if args.models is None:
        from facecloak.models.registry import split_installed

        models = split_installed(DEFAULT_MODELS)[0]
    else:
        models = tuple(m for m in args.models.split(",") if m)
    try:
        report, before, after = verify(args.original, args.cloaked, models)
        if args.picture is not None:
            before_after(
                before, after, args.picture, overwrite=args.overwrite,
                protect=[args.original, args.cloaked],
            )  # fmt: skip
    except (VerifyError, ImageError, ModelFileMissing, KeyError, ValueError) as error:
        error_line(error)
        return EXIT_FAILED
    print("\n".join(_lines(report)))
    if args.json is not None:
        write_json_atomically(args.json, report.to_dict())
    return EXIT_OK
