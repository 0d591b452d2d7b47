"""Lossless scrub throughput: files per second through ``facecloak.scrub.scrub_file``.

exiftool is kept running (``-stay_open``) for the whole run, as the scrubber does; for
comparison the same files are also stripped by starting ``exiftool`` once per file (the strip
alone, without the read-back checks the scrubber adds).  Inputs are every supported sample in
../shared/data/meta (not the fuzz folder) and the photos; outputs go to a temporary folder.

    .venv/bin/python bench/scrub.py [--repeat 3] [--per-file-limit 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import require_data
from facecloak.scrub import ScrubError, scrub_file
from facecloak.scrub.exiftool import shared
from facecloak.scrub.formats import Refused, detect


def inputs() -> list[Path]:
    """Every file the scrubber accepts, from the metadata samples and the photos."""
    folders = [require_data("meta"), require_data("photos")]
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or "malformed-fuzz" in path.parts:
                continue
            try:
                detect(path, path.read_bytes()[:4096])
            except (Refused, OSError):
                continue
            found.append(path)
    return found


def scrub_all(files: list[Path], out: Path) -> tuple[float, Counter, int]:
    """Seconds to scrub every file once, the formats done, and the failures."""
    done: Counter = Counter()
    failed = 0
    started = time.perf_counter()
    for index, source in enumerate(files):
        try:
            report = scrub_file(source, out / f"{index}{source.suffix}", overwrite=True)
        except ScrubError:
            failed += 1
            continue
        done[report.format] += 1
    return time.perf_counter() - started, done, failed


def exiftool_per_file(files: list[Path], out: Path) -> float:
    """Seconds to strip the same files with one exiftool start per file (the naive way)."""
    exiftool = shutil.which("exiftool")
    assert exiftool is not None
    started = time.perf_counter()
    for index, source in enumerate(files):
        target = out / f"naive{index}{source.suffix}"
        target.unlink(missing_ok=True)
        subprocess.run(
            [exiftool, "-q", "-q", "-m", "-all=", "-tagsfromfile", "@", "-ICC_Profile",
             "-o", str(target), str(source)],
            check=False, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the files")
    parser.add_argument("--per-file-limit", type=int, default=60, help="files for the naive run")
    args = parser.parse_args()
    if shutil.which("exiftool") is None:
        sys.exit("exiftool is not installed (Debian: libimage-exiftool-perl)")
    files = inputs()
    megabytes = sum(path.stat().st_size for path in files) / 1e6
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        shared().execute("-ver")  # start the long-running exiftool before timing
        scrub_all(files, out)  # warm-up pass (file cache, imports)
        times = []
        for _ in range(args.repeat):
            seconds, formats, failed = scrub_all(files, out)
            times.append(seconds)
        best = min(times)
        naive_files = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
        naive_files = naive_files[: args.per_file_limit]
        naive = exiftool_per_file(naive_files, out)
        kept_open, _formats, _failed = scrub_all(naive_files, out)
    figures = {
        "files": len(files),
        "megabytes": round(megabytes, 1),
        "formats": dict(sorted(formats.items())),
        "failed": failed,
        "seconds_best_of_repeats": round(best, 3),
        "files_per_second": round(len(files) / best, 1),
        "megabytes_per_second": round(megabytes / best, 1),
        "jpeg_files_compared": len(naive_files),
        "scrub_file_stay_open_files_per_second": round(len(naive_files) / kept_open, 1),
        "exiftool_started_per_file_files_per_second": round(len(naive_files) / naive, 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
