"""darktable export speed: seconds per photo through the export hook (darktable-cli) and the
"cloak faces" storage (GUI under Xvfb), against the same photos through `facecloak cloak`.

The photos are copies of ../shared/data/photos/face_recognition-examples (portraits and
couples; repeated to reach --photos, resized so the longer side is at most --max-side) in a
temporary folder. Every path cloaks with the same
budget (default: mode low with one step, so the figures show darktable's and the bridge's
overhead, not the optimiser; pass --options "" for the mode's full budget). darktable's own
export without cloaking is timed too, so the overhead can be read off.

    .venv/bin/python bench/darktable.py [--photos 50] [--max-side 800] [--mode low]
        [--options "--steps 1 --extra-steps 0 --samples 1"] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import require_data

from tests.darktable.harness import CHEAP_OPTIONS, CLIENT, Darktable

SOURCES = "face_recognition-examples"  # portraits and couples, as a photographer exports


def make_photos(folder: Path, count: int, max_side: int, sources: str) -> list[Path]:
    """``count`` JPEGs made from the real photos, cycling through them, at most ``max_side``."""
    from PIL import Image

    sources = sorted(
        p
        for name in sources.split(",")
        for p in require_data("photos", name).iterdir()
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.name != "dogs.jpg"
    )
    folder.mkdir(parents=True)
    photos = []
    for index, source in zip(range(count), itertools.cycle(sources)):
        with Image.open(source) as image:
            image = image.convert("RGB")
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            path = folder / f"{index:03d}-{source.stem}.jpg"
            image.save(path, quality=95)
        photos.append(path)
    return photos


def warm_server(darktable: Darktable) -> None:
    """Start the engine server and load its models before timing (as after a first export)."""
    env = darktable.env()
    subprocess.run([str(CLIENT), "start"], env=env, check=True, capture_output=True)
    warm = darktable.root / "warm.jpg"
    from PIL import Image

    Image.new("RGB", (64, 64), "gray").save(warm)
    command = [str(CLIENT), "cloak", str(warm), str(darktable.root / "warm-out.jpg"),
               "--overwrite", "--mode", "low", "--steps", "1"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True)


def timed(label: str, function) -> float:
    started = time.perf_counter()
    function()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds


def check(run: subprocess.CompletedProcess, outputs: Path, count: int, what: str) -> None:
    made = len(list(outputs.glob("*.jpg"))) if outputs.exists() else 0
    if made != count:
        sys.exit(f"{what}: {made} of {count} outputs\n{run.stdout[-3000:]}")


def bench_direct(
    root: Path, photos: Path, count: int, mode: str, options: list[str]
) -> tuple[float, float]:
    """Wall time of one `facecloak cloak` over all photos, and the sum of its per-photo times
    (the same without starting Python and loading the models)."""
    out, report = root / "direct", root / "direct.json"
    out.mkdir()
    command = [str(Path(sys.executable).with_name("facecloak")), "cloak", *map(str, sorted(
        photos.glob("*.jpg"))), "--output-dir", str(out), "--mode", mode, *options,
        "--json", str(report)]  # fmt: skip
    result = {}

    def go() -> None:
        result["run"] = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    seconds = timed("facecloak cloak (one process, models loaded once)", go)
    check(result["run"], out, count, "facecloak cloak")
    data = json.loads(report.read_text())
    entries = data.get("photos", data) if isinstance(data, dict) else data
    photo_seconds = sum(float(entry.get("seconds", 0)) for entry in entries)
    print(f"  facecloak cloak, sum of per-photo times: {photo_seconds:.1f} s", flush=True)
    return seconds, photo_seconds


def bench_cli(
    root: Path, photos: Path, count: int, conf: dict[str, str], name: str, label: str
) -> float:
    darktable = Darktable(root / name)
    if conf.get("lua/facecloak/hook") == "TRUE":
        warm_server(darktable)
    result = {}

    def go() -> None:
        pattern = str(root / name / "out" / "$(FILE_NAME).jpg")
        result["run"] = darktable.cli(photos, pattern, conf, timeout=3600)

    try:
        seconds = timed(label, go)
    finally:
        darktable.stop_server()
    check(result["run"], root / name / "out", count, label)
    return seconds


def bench_storage(root: Path, photos: Path, count: int, conf: dict[str, str]) -> float:
    darktable = Darktable(root / "storage")
    warm_server(darktable)
    out = root / "storage" / "out"
    conf = {**conf, "plugins/lighttable/export/storage_name": "facecloak",
            "plugins/lighttable/export/format_name": "jpeg",
            "lua/facecloak/storage_folder": str(out)}  # fmt: skip
    try:
        run = darktable.gui_export(sorted(photos.glob("*.jpg")), conf, timeout=3600)
    finally:
        darktable.stop_server()
    check(run, out, count, "storage")
    times = dict(re.findall(r"time (export-start|export-end) ([\d.]+)", run.stdout))
    seconds = float(times["export-end"]) - float(times["export-start"])
    print(f"  darktable GUI, cloak faces storage (export only): {seconds:.1f} s", flush=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--max-side", type=int, default=800)
    parser.add_argument("--sources", default=SOURCES, help="folders under photos/, comma-separated")
    parser.add_argument("--mode", default="low")
    parser.add_argument("--options", default=CHEAP_OPTIONS, help="extra cloak options")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    for program in ("darktable-cli", "darktable", "xvfb-run"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is not installed: run sudo bash .ci/setup.d/darktable.sh")
    options = args.options.split()
    cloak = {"lua/facecloak/hook_mode": args.mode, "lua/facecloak/storage_mode": args.mode,
             "lua/facecloak/options": args.options}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="facecloak-bench-dt-") as tmp:
        root = Path(tmp)
        make_photos(root / "photos", args.photos, args.max_side, args.sources)
        n = args.photos
        print(f"{n} photos, longer side <= {args.max_side} px, mode {args.mode} {args.options}")
        photos = root / "photos"
        direct, direct_photos = bench_direct(root, photos, n, args.mode, options)
        seconds = {
            "facecloak_cloak": direct,
            "facecloak_cloak_per_photo_sum": direct_photos,
            "darktable_cli_no_cloak": bench_cli(
                root,
                photos,
                n,
                {"lua/facecloak/hook": "FALSE"},
                "plain",
                "darktable-cli, no cloak",
            ),
            "darktable_cli_hook": bench_cli(
                root,
                photos,
                n,
                {"lua/facecloak/hook": "TRUE", **cloak},
                "hook",
                "darktable-cli, export hook",
            ),
            "darktable_gui_storage": bench_storage(root, photos, n, cloak),
        }
    figures = {
        "photos": n, "max_side": args.max_side, "mode": args.mode, "options": args.options,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "seconds_per_photo": {k: round(v / n, 3) for k, v in seconds.items()},
    }  # fmt: skip
    print(json.dumps(figures["seconds_per_photo"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
