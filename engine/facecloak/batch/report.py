"""The end of a batch: one summary line, the files without faces, skipped and failed ones
(each with its one-line reason), and the same as JSON for programs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from facecloak.batch.work import FileResult

ORDER = ("cloaked", "no-face", "scrubbed", "done-before", "skipped", "failed")
LISTED = 20  # per category on the terminal; the JSON has every file
LABELS = {
    "no-face": "without faces",
    "scrubbed": "scrubbed only",
    "done-before": "done before",
    "skipped": "skipped",
}


def counts(results: Sequence[FileResult]) -> dict[str, int]:
    found = Counter(result.status for result in results)
    return {status: found.get(status, 0) for status in ORDER}


def summary_line(results: Sequence[FileResult], seconds: float, interrupted: bool) -> str:
    number = counts(results)
    faces = sum(result.cloaked for result in results)
    worked = [r for r in results if r.status in ("cloaked", "no-face", "scrubbed")]
    parts = [f"{number['cloaked']} cloaked ({faces} faces)"]
    parts += [f"{number[s]} {LABELS[s]}" for s in LABELS if number[s]]
    parts.append(f"{number['failed']} failed")
    rate = f", {60 * len(worked) / seconds:.1f} photos/min" if worked and seconds > 0 else ""
    head = "interrupted after" if interrupted else "batch done:"
    return f"{head} {len(results)} file(s): {', '.join(parts)} in {seconds:.1f} s{rate}"


def print_report(
    results: Sequence[FileResult], seconds: float, interrupted: bool, out: TextIO, err: TextIO
) -> None:
    print(summary_line(results, seconds, interrupted), file=out)
    sections = (
        ("no faces found (written unchanged, metadata removed)", "no-face", out, False),
        ("skipped", "skipped", out, True),
        ("failed", "failed", err, True),
    )
    for title, status, stream, reasons in sections:
        chosen = [result for result in results if result.status == status]
        if not chosen:
            continue
        print(f"{title}: {len(chosen)}", file=stream)
        for result in chosen[:LISTED]:
            print(f"  {result.error if reasons else result.input}", file=stream)
        if len(chosen) > LISTED:
            print(f"  ... and {len(chosen) - LISTED} more (see --json)", file=stream)


def as_json(
    results: Sequence[FileResult], seconds: float, interrupted: bool, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        **extra,
        "interrupted": interrupted,
        "seconds": round(seconds, 2),
        "counts": counts(results),
        "faces_cloaked": sum(result.cloaked for result in results),
        "files": [result.to_dict() for result in results],
    }
