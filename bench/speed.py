"""Cloaking speed: seconds per face and per photo in each mode at 1, 12 and 24 megapixels.

Each size runs in a fresh process so its peak resident memory is its own. The photo is
``obama_and_biden.jpg`` (3 faces) from ../shared/data, resized to the size under test.

    .venv/bin/python bench/speed.py [--modes low,mid,high] [--sizes 1,12,24] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PHOTO = ("photos", "face_recognition-examples", "obama_and_biden.jpg")


def measure(mode: str, megapixels: float, device: str, seed: int) -> dict:
    """Load the engine, cloak one photo of the given size, report the figures."""
    import torch
    from _common import gpu_peak_mb, peak_rss_mb, photo_at_megapixels, require_data
    from facecloak.budget import budget_for
    from facecloak.engine import Engine

    pixels = photo_at_megapixels(require_data(*PHOTO), megapixels)
    started = time.perf_counter()
    engine = Engine(device=device)
    load = time.perf_counter() - started
    if engine.device.type == "cuda":  # first kernel launches are one-off costs of a warm server
        engine.cloak_pixels(pixels, budget_for(mode).with_overrides(steps=2, extra_steps=0))
        torch.cuda.synchronize()
    started = time.perf_counter()
    detection = engine.detector.detect(pixels)
    detect = time.perf_counter() - started
    started = time.perf_counter()
    _, faces = engine.cloak_pixels(pixels, mode, seed=seed)
    total = time.perf_counter() - started
    cloaked = sum(face.cloaked for face in faces)
    return {
        "mode": mode,
        "megapixels": round(pixels.shape[0] * pixels.shape[1] / 1e6, 1),
        "faces": cloaked,
        "model_load_s": round(load, 2),
        "detect_s": round(detect, 2),
        "photo_s": round(total, 2),
        "per_face_s": round(total / max(1, cloaked), 2),
        "min_face_ssim": min((f.ssim for f in faces if f.cloaked), default=None),
        "face_px": [round(face.size) for face in detection.faces],
        "peak_rss_mb": round(peak_rss_mb()),
        "gpu_peak_mb": None if (gpu := gpu_peak_mb(device)) is None else round(gpu),
        "threads": torch.get_num_threads(),
        "device": device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="low,mid,high")
    parser.add_argument("--sizes", default="1,12,24")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "MP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], float(args.one[1]), args.device, args.seed)))
        return
    rows = []
    header = f"{'mode':5} {'MP':>5} {'faces':>5} {'load s':>7} {'detect s':>8} {'photo s':>8}"
    header += f" {'s/face':>7} {'SSIM min':>8} {'peak MB':>8} {'GPU MB':>7}"
    print(header)
    for mode in args.modes.split(","):
        for size in args.sizes.split(","):
            command = [sys.executable, __file__, "--one", mode, size, "--device", args.device]
            command += ["--seed", str(args.seed)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(f"{mode:5} {size:>5} failed: {result.stderr.strip().splitlines()[-1]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{row['mode']:5} {row['megapixels']:>5} {row['faces']:>5} "
                f"{row['model_load_s']:>7} {row['detect_s']:>8} {row['photo_s']:>8} "
                f"{row['per_face_s']:>7} {row['min_face_ssim'] or 0:>8.4f} {row['peak_rss_mb']:>8}"
                f" {row['gpu_peak_mb']!s:>7}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
