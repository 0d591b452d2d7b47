"""Protection of the faces in group photos: many small faces per photo, from the tracker's side.

LFW's faces (bench/protect_quick.py) are about a recogniser's chip in size, and portraits
(bench/protect_portraits.py) far bigger. A group photo's faces are often 40-80 px, smaller than
the chip, so the recognisers read them upsampled and a cloak has few pixels to work with. For
each group photo in ../shared/data/photos, at its own resolution: cloak it, then, like a
tracker, re-detect every face on the copies of bench/_tracker.py (``saved``, ``jpeg75``, and
``web``: shrunk to a 1080-px long side, never enlarged, then JPEG 75) and compare each
recogniser's embedding with the clean face's. Reports the share of faces still matching under
each model's own threshold, overall and for faces under ``SMALL_FACE`` px, the closest
similarities, face-region SSIM, and seconds per face. Faces too small to protect (under the
detector's 40 px) are counted, not scored.

    .venv/bin/python bench/protect_groups.py [--mode mid] [--set KEY=VALUE] [--json FILE]
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

# Every photo of ../shared/data with two or more faces the engine protects (dogs.jpg has none).
GROUPS = (
    ("dlib-examples-faces", "2007_007763.jpg"),
    ("dlib-examples-faces", "2008_001009.jpg"),
    ("dlib-examples-faces", "2008_001322.jpg"),
    ("dlib-examples-faces", "2008_002079.jpg"),
    ("dlib-examples-faces", "2008_002470.jpg"),
    ("dlib-examples-faces", "2008_002506.jpg"),
    ("dlib-examples-faces", "2008_004176.jpg"),
    ("dlib-examples-faces", "2008_007676.jpg"),
    ("dlib-examples-faces", "2009_004587.jpg"),
    ("dlib-examples-faces", "bald_guys.jpg"),
    ("face_recognition-examples", "kit_with_rose.jpg"),
    ("face_recognition-examples", "obama_and_biden.jpg"),
    ("face_recognition-examples", "two_people.jpg"),
)
SMALL_FACE = 80  # px (the detector's box): below about a chip's size


def measure(
    engine: Engine, judge: Cloaker, detector: FaceDetector, path: Path, mode: CloakBudget, seed: int
) -> tuple[dict, list[dict]]:
    """Cloak one group photo; a summary row for it and a row per protected face."""
    original = np.asarray(Image.open(path).convert("RGB")).copy()
    detection = detector.detect(original)
    faces = detection.faces
    tick = time.perf_counter()
    cloaked, reports = engine.cloak_pixels(original, mode, seed=seed)
    seconds = time.perf_counter() - tick
    photo = {
        "photo": path.name,
        "seconds": seconds,
        "faces": sum(r.cloaked for r in reports),
        "too_small": len(detection.too_small),
    }
    rows = [
        {
            "photo": path.name,
            "face_px": round(face.size),
            "ssim": face_region_ssim(original, cloaked, face),
        }
        for face in faces
    ]
    references = judge.embed(original, [face.landmarks for face in faces])
    for view, (copy, scale) in tracker_copies(cloaked).items():
        moved = [scaled(face, scale) for face in faces]
        for row, scores in zip(
            rows, rescore(judge, detector, moved, references, copy), strict=True
        ):
            for name, (similarity, still_matches) in scores.items():
                row[f"{name}/{view}"], row[f"{name}/{view}/match"] = similarity, still_matches
    return photo, rows


def _shares(rows: list[dict], prefix: str) -> dict:
    """Still-match share of ``rows`` per recogniser and view, keys starting with ``prefix``."""
    return {
        f"{prefix}{name}/{view}/still_match": round(
            sum(r[f"{name}/{view}/match"] for r in rows) / len(rows), 3
        )
        for name in EVALUATORS
        for view in VIEWS
        if rows
    }


def summarise(photos: list[dict], rows: list[dict], judge: Cloaker) -> dict:
    """Still-match shares (all faces, small faces), the closest similarities, SSIM and time."""
    small = [r for r in rows if r["face_px"] < SMALL_FACE]
    summary = {
        "photos": len(photos),
        "faces": len(rows),
        "small_faces": len(small),
        "too_small_to_protect": sum(p["too_small"] for p in photos),
        "seconds_per_face": round(sum(p["seconds"] for p in photos) / max(1, len(rows)), 2),
        "ssim_mean": round(float(np.mean([r["ssim"] for r in rows])), 4),
        "ssim_min": round(float(np.min([r["ssim"] for r in rows])), 4),
        **_shares(rows, ""),
        **_shares(small, "small/"),
    }
    for recogniser in judge.recognisers:
        spec = recogniser.spec
        # The similarity closest to a match: the highest cosine, or the smallest distance.
        closest = max if spec.metric == "cosine" else min
        for view in VIEWS:
            scored = [
                r[f"{spec.name}/{view}"] for r in rows if r[f"{spec.name}/{view}"] is not None
            ]
            summary[f"{spec.name}/{view}/closest"] = round(closest(scored), 3) if scored else None
    return summary


def main() -> None:
    run = tracker_run(__doc__.splitlines()[0])
    engine, judge, detector, mode = run.engine, run.judge, run.detector, run.mode
    print(f"{len(GROUPS)} group photos, mode {mode.name}; still matching (SFace cosine >= 0.363, "
          f"dlib distance <= 0.6) after re-detection, {' / '.join(VIEWS)}")  # fmt: skip
    photos, rows = [], []
    for folder, name in GROUPS:
        path = require_data("photos", folder, name)
        photo, faces = measure(engine, judge, detector, path, mode, run.seed)
        photos.append(photo)
        rows += faces
        sizes = [r["face_px"] for r in faces]
        counts = " | ".join(
            f"{n} " + " / ".join(str(sum(r[f"{n}/{v}/match"] for r in faces)) for v in VIEWS)
            for n in EVALUATORS
        )
        print(
            f"{name:22} {photo['faces']:>2} faces {min(sizes):>4}-{max(sizes):<4} px "
            f"({photo['too_small']} too small) {photo['seconds']:6.1f} s "
            f"SSIM min {min(r['ssim'] for r in faces):.4f} | still match: {counts}",
            flush=True,
        )
    summary = summarise(photos, rows, judge)
    print(json.dumps(summary, indent=1))
    if run.json:
        run.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
