"""Quick protection check on LFW faces, from the tracker's side of the fence.

For a fixed, seeded subset of ../shared/data/faces/lfw62 (one photo per person): cloak the
photo with the engine, then, like a tracker, re-detect and re-align the face on the cloaked
photo (never the optimiser's crop) and embed it with each recogniser. Reports each model's
similarity between original and cloaked face, the share of faces that would still match
under the model's own threshold, the same after JPEG quality 75, and face-region SSIM.
Leave-one-out transfer: cloak with one model only and measure the other.

    .venv/bin/python bench/protect_quick.py [--count 20] [--mode mid] [--configs ...]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import require_data
from facecloak.budget import budget_for
from facecloak.cloak import Cloaker
from facecloak.detect import FaceDetector
from facecloak.engine import Engine
from facecloak.metrics import face_region_ssim, match_faces
from facecloak.models.registry import split_installed

# The cloak's two models, then FaceNet and the HSE MobileNet, which no cloak is made with (the
# latter where npm could install it: scripts/fetch-npm-models.sh).
EVALUATORS = split_installed(("sface", "dlib", "facenet", "hse"))[0]


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through Pillow's JPEG encoder, as a tracker's scraper might store it."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def pick_photos(root: Path, count: int, seed: int) -> list[Path]:
    """One photo each of ``count`` people, chosen with a fixed seed."""
    people = sorted(p for p in root.iterdir() if p.is_dir())
    chooser = random.Random(seed)
    chosen = chooser.sample(people, min(count, len(people)))
    return [chooser.choice(sorted(person.glob("*.jpg"))) for person in chosen]


def evaluate(
    config: str, mode, photos: list[Path], seed: int, judge: Cloaker, device: str = "cpu"
) -> dict:
    """Cloak every photo with the ``config`` ensemble and measure with every evaluator."""
    engine = Engine(config.split("+"), device=device)
    detector = FaceDetector()
    rows = []
    started = time.perf_counter()
    faces_cloaked, cloak_seconds = 0, 0.0
    for photo in photos:
        original = np.asarray(Image.open(photo).convert("RGB")).copy()
        clean = detector.detect(original).faces
        if not clean:
            continue
        face = max(clean, key=lambda f: f.size)  # LFW: the centred, largest face
        tick = time.perf_counter()
        cloaked, reports = engine.cloak_pixels(original, mode, seed=seed)
        cloak_seconds += time.perf_counter() - tick
        faces_cloaked += sum(r.cloaked for r in reports)
        row = {"photo": photo.name, "ssim": face_region_ssim(original, cloaked, face)}
        reference = judge.embed(original, [face.landmarks])
        for variant, pixels in (("saved", cloaked), ("jpeg75", jpeg(cloaked, 75))):
            found = match_faces([face], detector.detect(pixels).faces)
            again = found[0]
            if again is None:  # the tracker cannot even find the face: protected
                for name in EVALUATORS:
                    row[f"{name}/{variant}"] = None
                    row[f"{name}/{variant}/match"] = False
                continue
            embedded = judge.embed(pixels, [again.landmarks])
            for recogniser in judge.recognisers:
                spec = recogniser.spec
                value = spec.published_similarity(embedded[spec.name], reference[spec.name])
                row[f"{spec.name}/{variant}"] = float(value[0])
                match = spec.same_person(embedded[spec.name], reference[spec.name])
                row[f"{spec.name}/{variant}/match"] = bool(match[0])
        rows.append(row)
    seconds = time.perf_counter() - started
    summary = {"config": config, "mode": getattr(mode, "name", mode), "faces": len(rows)}
    # All of it (the tracker's detections and embeddings too), and the engine's cloak alone
    # (its own detection included): the figure the speed target is about.
    summary["seconds_per_face"] = round(seconds / max(1, faces_cloaked), 2)
    summary["cloak_seconds_per_face"] = round(cloak_seconds / max(1, faces_cloaked), 2)
    summary["ssim_mean"] = round(float(np.mean([r["ssim"] for r in rows])), 4)
    summary["ssim_min"] = round(float(np.min([r["ssim"] for r in rows])), 4)
    for recogniser in judge.recognisers:
        spec = recogniser.spec
        for variant in ("saved", "jpeg75"):
            values = [r[f"{spec.name}/{variant}"] for r in rows]
            scored = [v for v in values if v is not None]
            matches = [r[f"{spec.name}/{variant}/match"] for r in rows]
            key = f"{spec.name}/{variant}"
            summary[f"{key}/similarity_mean"] = round(float(np.mean(scored)), 3) if scored else None
            summary[f"{key}/still_match"] = round(sum(matches) / max(1, len(values)), 3)
    return {"summary": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="people (one photo each)")
    parser.add_argument("--mode", default="mid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--configs", default="sface+dlib,sface,dlib",
        help="ensembles to cloak with; '+' joins models (the others measure transfer)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cpu", help="where the cloak runs: cpu or cuda")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a budget setting, e.g. --set steps=30 --set samples=1",
    )  # fmt: skip
    args = parser.parse_args()
    overrides = {k: float(v) if "." in v else int(v) for k, v in (o.split("=") for o in args.set)}
    mode = budget_for(args.mode).with_overrides(**overrides)
    torch.manual_seed(args.seed)
    photos = pick_photos(require_data("faces", "lfw62"), args.count, args.seed)
    judge = Cloaker(EVALUATORS)
    results = []
    print(f"{len(photos)} LFW photos, mode {mode}; similarity: SFace cosine (match >= "
          "0.363), dlib distance (match <= 0.6); after re-detection")  # fmt: skip
    header = f"{'cloaked with':12} {'SSIM mean/min':>14} {'s/face':>6} {'cloak':>5}"
    for name in EVALUATORS:
        header += f" | {name + ' sim':>9} {'match':>5} {'jpg75 sim':>9} {'match':>5}"
    print(header)
    for config in args.configs.split(","):
        result = evaluate(config, mode, photos, args.seed, judge, args.device)
        results.append(result)
        s = result["summary"]
        line = f"{config:12} {s['ssim_mean']:>7.4f}/{s['ssim_min']:.4f} {s['seconds_per_face']:>6}"
        line += f" {s['cloak_seconds_per_face']:>5}"
        for name in EVALUATORS:
            line += (
                f" | {s[f'{name}/saved/similarity_mean']!s:>9} {s[f'{name}/saved/still_match']:>5}"
                f" {s[f'{name}/jpeg75/similarity_mean']!s:>9} {s[f'{name}/jpeg75/still_match']:>5}"
            )
        print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
