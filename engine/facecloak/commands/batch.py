"""``facecloak batch``: cloak whole folders, list files and darktable catalog selections into a
destination that mirrors them; resumable, with ``--jobs`` threads, the server or Ray."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path, PurePosixPath

from facecloak import __version__
from facecloak.budget import MODES
from facecloak.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    error_line,
    write_json_atomically,
)
from facecloak.commands.cloak import add_budget_overrides, budget_from_args

NAME = "batch"
HELP = "cloak whole folders, list files or darktable catalog selections (resumable)"
EXIT_INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="*", metavar="SOURCE", type=Path, help="folders, files")
    parser.add_argument("-d", "--dest", type=Path, required=True, help="destination folder")
    where = parser.add_argument_group("sources")
    where.add_argument(
        "--list",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a file naming inputs, one per line",
    )
    where.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only files whose name or path matches (e.g. '*.jpg')",
    )
    where.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    where.add_argument("--hidden", action="store_true", help="also take dot-files and folders")
    catalog = parser.add_argument_group("darktable catalog (read-only)")
    catalog.add_argument("--darktable", type=Path, metavar="LIBRARY_DB", help="library.db")
    catalog.add_argument(
        "--darktable-data",
        type=Path,
        metavar="DATA_DB",
        help="data.db with the tag names (default: beside library.db)",
    )
    catalog.add_argument("--film-roll", action="append", default=[], metavar="FOLDER")
    catalog.add_argument("--tag", action="append", default=[], help="a tag and its sub-tags")
    catalog.add_argument("--min-rating", type=int, choices=range(0, 6), metavar="0-5")
    catalog.add_argument(
        "--colour",
        "--color",
        action="append",
        default=[],
        choices=("red", "yellow", "green", "blue", "purple"),
    )
    catalog.add_argument("--taken-from", type=_date, metavar="YYYY-MM-DD")
    catalog.add_argument("--taken-until", type=_date, metavar="YYYY-MM-DD")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--name",
        default="{stem}{ext}",
        metavar="PATTERN",
        help="output name from {stem} {ext} {name} {suffix} (default {stem}{ext})",
    )
    out.add_argument("--format", choices=("same", "jpeg", "png"), default="same")
    out.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    out.add_argument("--no-cloak", action="store_true", help="only remove metadata")
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs that this batch did not make",
    )
    out.add_argument("--json", type=Path, metavar="REPORT", help="write a JSON summary")
    run = parser.add_argument_group("running")
    run.add_argument("--jobs", type=int, default=2, help="threads decoding/encoding (default 2)")
    run.add_argument("--server", action="store_true", help="use the warm local server")
    run.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('local': start one)")
    run.add_argument("--ray-workers", type=int, default=2, help="workers of --ray local")
    run.add_argument(
        "--ray-allow-network",
        action="store_true",
        help="let --ray local listen on this machine's network address, as Ray does by itself "
        "(default: a private network namespace with only loopback)",
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="mid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--models", default="sface,dlib", help="recogniser ensemble")
    add_budget_overrides(parser)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def gather(args: argparse.Namespace) -> list:
    """Every source file: folders (walked), single files, list files, the catalog."""
    from facecloak.batch import darktable
    from facecloak.batch.sources import Filters, mirror, read_list_file, walk_folder

    filters = Filters(args.include, args.exclude, args.hidden)
    folders = [s for s in args.sources if s.is_dir()]
    files = [s for s in args.sources if not s.is_dir()]
    for missing in (s for s in files if not os.path.lexists(s)):
        raise UsageError(f"{missing}: no such file or folder")
    destination = os.path.realpath(args.dest)
    for folder in folders:
        if os.path.realpath(folder) == destination:
            raise UsageError(f"{folder}: the destination must not be a source folder")
    alone = len(folders) == 1 and not (files or args.list or args.darktable)
    sources = []
    names: set[str] = set()
    for folder in folders:
        prefix = None
        if not alone:
            name = Path(os.path.realpath(folder)).name or "root"
            while name in names:
                name += "_"
            names.add(name)
            prefix = PurePosixPath(name)
        sources += walk_folder(folder, filters, skip=[args.dest], prefix=prefix)
    sources += mirror(files)
    for list_file in args.list:
        sources += read_list_file(list_file)
    if args.darktable is not None:
        selection = darktable.Selection(
            film_rolls=args.film_roll, tags=args.tag, min_rating=args.min_rating,
            colours=args.colour, taken_from=args.taken_from, taken_until=args.taken_until,
        )  # fmt: skip
        sources += darktable.select(args.darktable, selection, args.darktable_data)
    elif args.film_roll or args.tag or args.colour or args.min_rating is not None:
        raise UsageError("--film-roll, --tag, --colour and --min-rating need --darktable")
    return sources


def keep_ray_local_private(allow_network: bool) -> str | None:
    """``--ray local``: move this process, and so the Ray processes it starts, into a private
    network namespace with only loopback, before anything starts a thread; else why not."""
    from facecloak.batch.isolation import IsolationError, isolate

    if allow_network:
        print(
            "facecloak: WARNING: --ray-allow-network: the local Ray cluster listens on this "
            "machine's network address (GCS, raylet, object manager, workers); anyone who can "
            "reach it can run code as you and read the photos",
            file=sys.stderr,
            flush=True,
        )
        return None
    try:
        isolate()
    except IsolationError as error:
        return f"--ray local refused: {error}"
    return None


def run(args: argparse.Namespace) -> int:
    if args.ray_allow_network and args.ray != "local":
        raise UsageError("--ray-allow-network goes with --ray local")
    if args.ray == "local":
        refusal = keep_ray_local_private(args.ray_allow_network)
        if refusal is not None:
            error_line(refusal)
            return EXIT_USAGE
    from facecloak.batch.manifest import ManifestError
    from facecloak.batch.naming import NamingError, check_pattern
    from facecloak.batch.progress import BatchProgress
    from facecloak.batch.ray_backend import RayMissing, import_ray
    from facecloak.batch.report import as_json, print_report
    from facecloak.batch.session import BatchRequest, execute
    from facecloak.batch.settings import BatchSettings
    from facecloak.batch.sources import SourceError

    if not (args.sources or args.list or args.darktable):
        raise UsageError("give at least one source: a folder, a file, --list or --darktable")
    if args.jobs < 1 or args.ray_workers < 1:
        raise UsageError("--jobs and --ray-workers must be at least 1")
    if not 1 <= args.quality <= 100:
        raise UsageError("--quality must be between 1 and 100")
    if args.no_cloak and args.format != "same":
        raise UsageError("--no-cloak keeps each file's format; leave out --format")
    if args.server and args.ray:
        raise UsageError("choose --server or --ray, not both")
    try:
        check_pattern(args.name)
        if args.ray:
            import_ray()
        if args.server:
            import facecloak_bridge.client  # noqa: F401
    except (NamingError, RayMissing) as error:
        raise UsageError(str(error)) from None
    except ImportError:
        raise UsageError("--server needs the facecloak bridge, which is not installed") from None
    settings = BatchSettings(
        budget=budget_from_args(args), seed=args.seed, device=args.device,
        models=tuple(m for m in args.models.split(",") if m), jpeg_quality=args.quality,
        output_format=args.format, cloak=not args.no_cloak,
    )  # fmt: skip
    try:
        sources = gather(args)
    except SourceError as error:
        error_line(error)
        return EXIT_FAILED
    if not sources:
        error_line("nothing selected: no source file matched")
        return EXIT_FAILED
    request = BatchRequest(
        sources, args.dest, settings, pattern=args.name, jobs=args.jobs,
        overwrite=args.overwrite, server=args.server, ray=args.ray, ray_workers=args.ray_workers,
        ray_allow_network=args.ray_allow_network,
    )  # fmt: skip
    bar = BatchProgress(len(sources))
    try:
        outcome = execute(request, bar.add)
    except (ManifestError, OSError, ValueError, RuntimeError) as error:
        bar.close()
        error_line(error)
        return EXIT_FAILED
    bar.close()
    print_report(outcome.results, outcome.seconds, outcome.interrupted, sys.stdout, sys.stderr)
    if args.json is not None:
        extra = {
            "version": __version__, "destination": str(args.dest), "mode": settings.budget.name,
            "seed": settings.seed, "options": settings.fingerprint(),
        }  # fmt: skip
        write_json_atomically(
            args.json, as_json(outcome.results, outcome.seconds, outcome.interrupted, extra)
        )
    if outcome.interrupted:
        print("facecloak: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(r.status == "failed" for r in outcome.results) else EXIT_OK
