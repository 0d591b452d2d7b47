"""GIMP plug-in speed: seconds from invoking Cloak faces to the updated layer, cold and warm.

A 12-megapixel photo with 2 faces (``two_people.jpg`` resized), cloaked through the real GIMP 3
and GIMP 2.10 (whichever are installed; see .ci/setup.d/gimp.sh) with the plug-in installed
by installers/gimp.py into a throw-away profile. Cold: no engine running when the procedure
starts (GIMP 2.10: the plug-in starts it; GIMP 3 in the Debian 13 root: the benchmark starts it
at the moment the procedure would, as the engine cannot run inside that root). Warm: the
engine already loaded and used once.

    .venv/bin/python bench/gimp.py [--mode mid] [--megapixels 12] [--json out.json]
    .venv/bin/python bench/gimp.py --steps 1     # the plumbing alone: a 1-step cloak
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_ROOT / "bench"), str(PROJECT_ROOT)]

from _common import photo_at_megapixels, require_data  # noqa: E402
from PIL import Image  # noqa: E402

from tests.gimp import harness  # noqa: E402

PHOTO = ("photos", "face_recognition-examples", "two_people.jpg")  # 2 faces
WARM_UP = ("photos", "dlib-examples-faces", "2008_001322.jpg")
TIMED = PROJECT_ROOT / "tests" / "gimp" / "gimp3_timed.py"
UPDATED = re.compile(r"facecloak: layer updated ([0-9.]+) s after the procedure started")
ENGINE = re.compile(r"facecloak: \d+ face\(s\) found, \d+ cloaked, mode \S+ in ([0-9.]+) s")


def engine_seconds(output: str) -> list[float]:
    """The bridge call's own seconds per run (engine queue, cloak and transfer)."""
    return [round(float(t), 1) for t in ENGINE.findall(output)]


def make_photo(folder: Path, megapixels: float) -> Path:
    pixels = photo_at_megapixels(require_data(*PHOTO), megapixels)
    path = folder / f"two_people-{megapixels:g}mp.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    return path


def gimp3(photo: Path, args: dict) -> dict:
    """Cold (server started by this script at invocation) and warm, in one GIMP 3 session."""
    box = harness.Sandbox.create(("3",))
    try:
        photo = Path(shutil.copy(photo, box.work))  # GIMP 3 may run in a root that sees only this
        plan = {
            "ready": str(box.work / "ready"),
            "go": str(box.work / "go"),
            "socket": str(box.socket_path),
            "cases": [
                {"name": "cold", "input": str(photo), "args": args, "handshake": True},
                {"name": "warm", "input": str(photo), "args": args},
            ],
        }
        outcome: dict = {}

        def run() -> None:
            outcome["run"] = box.gimp3(plan, timeout=1500, script=TIMED)

        thread = threading.Thread(target=run)
        thread.start()
        while not Path(plan["ready"]).exists():
            if not thread.is_alive():
                break
            time.sleep(0.05)
        (box.work / "go.tmp").write_text(repr(time.time()))
        box.server = subprocess.Popen(
            [sys.executable, "-m", "facecloak.cli", "serve", "--runtime-dir",
             str(box.socket_path.parent), "--state-dir", str(box.log_path.parent),
             "--idle-timeout", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        (box.work / "go.tmp").rename(plan["go"])
        thread.join()
        results, output = outcome["run"]
        by_name = {r["name"]: r for r in results}
        assert all(r["status"] == "success" for r in results), output[-3000:]
        return {
            "cold_s": round(by_name["cold"]["from_server_start"], 1),
            "warm_s": round(by_name["warm"]["seconds"], 1),
            "procedure_cold_s": round(by_name["cold"]["seconds"], 1),
            "engine_call_s": engine_seconds(output),
        }
    finally:
        box.close()


def gimp2(photo: Path, call: str) -> dict:
    """Cold (the plug-in starts the engine itself) then warm, in one GIMP 2.10 session."""
    box = harness.Sandbox.create(("2.10",))
    try:
        step = f"""(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "{photo}" "{photo}")))
                         (layer (car (gimp-image-get-active-layer image))))
                    (plug-in-facecloak RUN-NONINTERACTIVE image layer {call})
                    (gimp-image-delete image))"""
        output = box.gimp2([step, step], timeout=1500)
        times = [float(t) for t in UPDATED.findall(output)]
        assert len(times) == 2, output[-3000:]
        return {
            "cold_s": round(times[0], 1),
            "warm_s": round(times[1], 1),
            "engine_call_s": engine_seconds(output),
        }
    finally:
        box.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("low", "mid", "high"), default="mid")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--steps", type=int, default=0,
        help="cheap runs: this many steps, 1 sample, no extra steps (measures the plumbing)",
    )  # fmt: skip
    parser.add_argument(
        "--gimp", action="append", choices=("3", "2.10"), help="only this GIMP (repeatable)"
    )
    args = parser.parse_args()
    wanted = args.gimp or ["3", "2.10"]
    expert = {"steps": args.steps, "samples": 1, "extra-steps": 0} if args.steps else {}
    folder = Path(tempfile.mkdtemp(prefix="fcbench"))
    photo = make_photo(folder, args.megapixels)
    with Image.open(photo) as image:
        size = f"{image.width}x{image.height}"
    figures: dict = {"photo": f"{PHOTO[-1]} at {size}", "mode": args.mode, **expert}
    if "3" not in wanted:
        pass
    elif harness.gimp3_command() is not None:
        figures["gimp3"] = gimp3(photo, {"mode": args.mode, **expert})
        print("GIMP 3:", figures["gimp3"], flush=True)
    else:
        print(harness.gimp3_missing())
    if "2.10" not in wanted:
        pass
    elif harness.gimp2_missing() is None:
        mode = ("low", "mid", "high").index(args.mode)
        cheap = f"{args.steps} 1 0" if args.steps else "0 0 -1"
        figures["gimp2.10"] = gimp2(photo, f"{mode} 1 0 {cheap}")
        print("GIMP 2.10:", figures["gimp2.10"], flush=True)
    else:
        print(harness.gimp2_missing())
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
