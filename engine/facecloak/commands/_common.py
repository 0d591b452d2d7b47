"""What every command shares: usage errors, exit codes and one-line messages."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line itself (exit code 2)."""


def error_line(message: object) -> None:
    """Print one line (the first of ``message``) to stderr, prefixed like every error."""
    text = str(message).splitlines()[0] if str(message) else "unknown error"
    print(f"facecloak: error: {text}", file=sys.stderr, flush=True)


def output_paths(inputs: list[Path], output: Path | None, output_dir: Path | None) -> list[Path]:
    """Where each input goes for commands that take ``-o FILE`` or ``--output-dir DIR``."""
    if output is not None:
        if len(inputs) != 1:
            raise UsageError("-o/--output takes one input; use --output-dir for several")
        return [output]
    assert output_dir is not None
    if not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output folder does not exist")
    names = [output_dir / source.name for source in inputs]
    if len(set(names)) != len(names):
        raise UsageError("two inputs share a file name; they would overwrite each other")
    return names


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write a JSON report so that a reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
