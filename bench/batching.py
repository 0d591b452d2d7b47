"""Does cloaking photos together pay? Seconds per photo one after another and in groups.

The same photos are cloaked one at a time (``Engine.cloak_pixels``) and in groups of K
(``Engine.cloak_pixels_many``, what the server does with queued requests), in alternating
rounds so that a busy machine slows both alike; the ratio is taken within each round. The
photos are real LFW photos (one face each) or real photos from ../shared/data/photos resized
to ``--megapixels`` (1-3 faces each).

    .venv/bin/python bench/batching.py [--set lfw|photos] [--count 4] [--groups 2,4]
                                       [--rounds 2] [--mode mid] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PHOTOS = ("obama_and_biden.jpg", "two_people.jpg", "biden.jpg", "obama.jpg")


def load_set(name: str, count: int, megapixels: float) -> list[np.ndarray]:
    from _common import photo_at_megapixels, require_data
    from PIL import Image

    if name == "lfw":
        root = require_data("faces", "lfw62")
        people = sorted(p for p in root.iterdir() if p.is_dir())[:count]
        return [np.asarray(Image.open(sorted(p.glob("*.jpg"))[0]).convert("RGB")) for p in people]
    folder = require_data("photos", "face_recognition-examples")
    names = [n for n in PHOTOS if (folder / n).exists()][:count]
    return [photo_at_megapixels(folder / n, megapixels) for n in names]


def timed(function) -> float:
    import torch

    started = time.perf_counter()
    function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("lfw", "photos"), default="lfw")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--groups", default="2,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", default="mid")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from facecloak.engine import Engine, PixelsTask

    photos = load_set(args.set, args.count, args.megapixels)
    engine = Engine(device=args.device)
    faces = sum(len(engine.detector.detect(p).faces) for p in photos)
    groups = [int(g) for g in args.groups.split(",")]
    engine.cloak_pixels(photos[0], "low")  # first-call costs belong to neither side

    def one_by_one() -> None:
        for seed, pixels in enumerate(photos):
            engine.cloak_pixels(pixels, args.mode, seed=seed)

    def grouped(size: int) -> None:
        for start in range(0, len(photos), size):
            chunk = photos[start : start + size]
            tasks = [PixelsTask(p, args.mode, seed=start + i) for i, p in enumerate(chunk)]
            for outcome in engine.cloak_pixels_many(tasks):
                if isinstance(outcome, Exception):
                    raise outcome

    rows = []
    for round_index in range(args.rounds):
        alone = timed(one_by_one)
        row = {"round": round_index + 1, "alone_s_per_photo": round(alone / len(photos), 2)}
        for size in groups:
            together = timed(lambda size=size: grouped(size))
            row[f"group{size}_s_per_photo"] = round(together / len(photos), 2)
            row[f"group{size}_vs_alone"] = round(together / alone, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "set": args.set,
        "photos": len(photos),
        "faces": faces,
        "mode": args.mode,
        "device": args.device,
        "threads": torch.get_num_threads(),
        **{
            f"median_group{size}_vs_alone": statistics.median(r[key] for r in rows)
            for size in groups
            for key in [f"group{size}_vs_alone"]
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
