"""Batch throughput: photos per minute and peak memory for ``facecloak batch`` on 12-megapixel
photos with 1-3 faces, with 1 and 2 ``--jobs`` and through Ray with 2 local workers.

The photos are real ones from ../shared/data (1, 2 and 3 faces) resized to the size asked
for and saved as JPEG. Each configuration runs in a fresh process into an empty destination,
models loaded inside the timing (a batch pays for that once). Memory is the peak resident
size of the whole process tree (Ray's workers included), sampled every 0.2 s.

    .venv/bin/python bench/batch.py                  # reduced: 8 photos, mode mid
    .venv/bin/python bench/batch.py --photos 200     # the full run (hours on 2 CPU cores:
                                                     # about 14 s per 12-MP face in mid)
    .venv/bin/python bench/batch.py --photos 6 --mode low --steps 2 --samples 1 --extra-steps 0
                                                     # pipeline-bound: what --jobs and Ray add
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PHOTOS = ("obama.jpg", "two_people.jpg", "obama_and_biden.jpg")  # 1, 2 and 3 faces
CONFIGS = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "ray2": ["--ray", "local"]}


def make_photos(folder: Path, count: int, megapixels: float) -> None:
    from _common import photo_at_megapixels, require_data
    from PIL import Image

    sources = [require_data("photos", "face_recognition-examples", n) for n in PHOTOS]
    bases = [photo_at_megapixels(path, megapixels) for path in sources]
    for index in range(count):
        pixels = bases[index % len(bases)]
        Image.fromarray(pixels).save(folder / f"photo{index:04d}.jpg", quality=92)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, in MB (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, family = 0, {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                changed = True
    for pid in family:
        total += rss.get(pid, 0)
    return total / 2**20


def run_config(name: str, source: Path, budget: list[str], device: str) -> dict:
    """One configuration, in a fresh ``facecloak batch`` process, memory sampled."""
    with tempfile.TemporaryDirectory(prefix=f"bench-batch-{name}-") as folder:
        dest, report = Path(folder) / "out", Path(folder) / "report.json"
        command = [sys.executable, "-m", "facecloak.cli", "batch", str(source), "-d", str(dest)]
        command += [*CONFIGS[name], *budget, "--device", device, "--json", str(report)]
        if name == "ray2":
            command += ["--ray-workers", "2"]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        peak = 0.0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_mb(process.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        output = process.communicate()[0].decode(errors="replace")
        done.set()
        sampler.join()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"{name} failed ({process.returncode}):\n{output[-2000:]}")
        summary = json.loads(report.read_text())
    worked = summary["counts"]["cloaked"] + summary["counts"]["no-face"]
    return {
        "config": name,
        "photos": worked,
        "faces": summary["faces_cloaked"],
        "wall_s": round(wall, 1),
        "photos_per_min": round(60 * worked / wall, 2),
        "peak_tree_rss_mb": round(peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8, help="number of photos (full: 200)")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--mode", default="mid")
    parser.add_argument("--steps", type=int, help="override the mode's steps")
    parser.add_argument("--samples", type=int, help="override the mode's samples per step")
    parser.add_argument("--extra-steps", type=int, help="override the mode's extra steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default="jobs1,jobs2,ray2")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    budget = ["--mode", args.mode]
    for name in ("steps", "samples", "extra_steps"):
        if getattr(args, name) is not None:
            budget += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-src-") as folder:
        source = Path(folder)
        started = time.perf_counter()
        make_photos(source, args.photos, args.megapixels)
        print(
            f"{args.photos} photos of {args.megapixels:g} MP with 1-3 faces made in "
            f"{time.perf_counter() - started:.1f} s; budget {' '.join(budget)}; "
            f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
            f"device {args.device}",
            flush=True,
        )
        for name in args.configs.split(","):
            row = run_config(name, source, budget, args.device)
            rows.append(row)
            print(
                f"{name:6} {row['photos']:4d} photos {row['faces']:4d} faces "
                f"{row['wall_s']:8.1f} s {row['photos_per_min']:7.2f} photos/min "
                f"peak memory {row['peak_tree_rss_mb']:6d} MB",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
