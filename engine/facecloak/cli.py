"""``facecloak``: the command line.

Each sub-command is one module of ``facecloak.commands``, found here by name, so adding a
command never touches this file. Exit codes: 0 when every input succeeded, 1 when any input
failed (the others are still done), 2 for usage errors. Errors are one line each.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from facecloak import __version__, commands
from facecloak.commands._common import EXIT_USAGE, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def command_modules() -> dict[str, ModuleType]:
    """Every command module, by command name, in alphabetical order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        found[module.NAME] = module
    return found


def build_parser(modules: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    modules = command_modules() if modules is None else modules
    parser = _Parser(prog="facecloak", description="Cloak faces against facial recognition.")
    parser.add_argument("--version", action="version", version=f"facecloak {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module in modules.items():
        module.add_arguments(subparsers.add_parser(name, help=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    modules = command_modules()
    try:
        args = build_parser(modules).parse_args(argv)
        return int(modules[args.command].run(args))
    except UsageError as error:
        print(f"facecloak: error: {error} (see facecloak --help)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("facecloak: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
