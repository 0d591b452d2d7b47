"""Protection of big faces: real portraits at their own resolution, from the tracker's side.

LFW's faces (bench/protect_quick.py) are about the size of a recogniser's chip. A portrait's
face spans 300-560 px, so every chip pixel averages many photo pixels, and the full-resolution
SSIM budget bites on smooth skin. For each portrait in ../shared/data/photos: cloak it, then,
like a tracker, re-detect the face on

- ``saved``: the cloaked photo as written,
- ``jpeg75``: the same re-encoded at JPEG quality 75,
- ``web``: the same shrunk (antialiased) to a social network's 1080-px long side, then JPEG 75,

and compare each recogniser's embedding with the clean original's. Reports the similarity, the
share still matching under each model's own threshold, face-region SSIM and seconds per face.

    .venv/bin/python bench/protect_portraits.py [--mode mid] [--set KEY=VALUE] [--json FILE]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import require_data
from _tracker import VIEWS, rescore, scaled, tracker_copies, tracker_run
from facecloak.budget import CloakBudget
from facecloak.cloak import Cloaker
from facecloak.detect import FaceDetector
from facecloak.engine import Engine
from facecloak.metrics import face_region_ssim
from protect_quick import EVALUATORS

# One face each, 300-560 px (YuNet's box), at the photo's own resolution.
PORTRAITS = (
    ("face_recognition-examples", "alex_lacamoire1.jpg"),
    ("face_recognition-examples", "biden.jpg"),
    ("face_recognition-examples", "lin-manuel-miranda.png"),
    ("face_recognition-examples", "obama-1080p.jpg"),
    ("face_recognition-examples", "obama.jpg"),
    ("face_recognition-examples", "obama1.jpg"),
    ("face_recognition-examples", "obama2.jpg"),
    ("face_recognition-examples", "rose_leslie_img1.jpg"),
    ("face_recognition-examples", "rose_leslie_img2.jpg"),
    ("dlib-examples-faces", "Tom_Cruise_avp_2014_4.jpg"),
)


def measure(
    engine: Engine, judge: Cloaker, detector: FaceDetector, path: Path, mode: CloakBudget, seed: int
) -> dict:
    """Cloak one portrait and look at it the tracker's three ways."""
    original = np.asarray(Image.open(path).convert("RGB")).copy()
    faces = detector.detect(original).faces
    face = max(faces, key=lambda f: f.size)
    tick = time.perf_counter()
    cloaked, reports = engine.cloak_pixels(original, mode, seed=seed)
    row = {
        "photo": path.name,
        "face_px": round(face.size),
        "seconds": time.perf_counter() - tick,
        "faces": sum(r.cloaked for r in reports),
        "ssim": face_region_ssim(original, cloaked, face),
    }
    reference = judge.embed(original, [face.landmarks])
    for view, (copy, scale) in tracker_copies(cloaked).items():
        scores = rescore(judge, detector, [scaled(face, scale)], reference, copy)[0]
        for name, (similarity, still_matches) in scores.items():
            row[f"{name}/{view}"], row[f"{name}/{view}/match"] = similarity, still_matches
    return row


def summarise(rows: list[dict]) -> dict:
    """Means, minima and still-match shares over the portraits."""
    summary = {
        "faces": len(rows),
        "seconds_per_face": round(
            sum(r["seconds"] for r in rows) / sum(r["faces"] for r in rows), 2
        ),
        "ssim_mean": round(float(np.mean([r["ssim"] for r in rows])), 4),
        "ssim_min": round(float(np.min([r["ssim"] for r in rows])), 4),
    }
    for name in EVALUATORS:
        for view in VIEWS:
            key = f"{name}/{view}"
            scored = [r[key] for r in rows if r[key] is not None]
            summary[f"{key}/similarity_mean"] = round(float(np.mean(scored)), 3) if scored else None
            summary[f"{key}/still_match"] = round(
                sum(r[f"{key}/match"] for r in rows) / len(rows), 2
            )
    return summary


def main() -> None:
    run = tracker_run(__doc__.splitlines()[0])
    engine, judge, detector, mode = run.engine, run.judge, run.detector, run.mode
    print(f"{len(PORTRAITS)} portraits, mode {mode.name}; SFace cosine (match >= 0.363), dlib "
          "distance (match <= 0.6), after re-detection")  # fmt: skip
    print(f"{'photo':28} {'face px':>7} {'s':>5} {'SSIM':>6} | " + " | ".join(
        f"{name} {' / '.join(VIEWS)}" for name in EVALUATORS
    ))  # fmt: skip
    rows = []
    for folder, name in PORTRAITS:
        row = measure(engine, judge, detector, require_data("photos", folder, name), mode, run.seed)
        rows.append(row)
        cells = " | ".join(
            " / ".join("-" if row[f"{n}/{v}"] is None else f"{row[f'{n}/{v}']:.3f}" for v in VIEWS)
            for n in EVALUATORS
        )
        print(f"{name:28} {row['face_px']:>7} {row['seconds']:>5.1f} {row['ssim']:.4f} | {cells}",
              flush=True)  # fmt: skip
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if run.json:
        run.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
