"""``facecloak verify``: would a tracker still recognise the faces of this cloaked photo?

Both photos are searched for faces independently (never the engine's crops), faces are paired
by overlap, and each recogniser compares each pair at its own published threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facecloak.evaluation.quality import photo_quality
from facecloak.evaluation.tracker import Tracker
from facecloak.imageio import load_image
from facecloak.metrics import match_faces


class VerifyError(Exception):
    """The two photos cannot be compared (sizes differ, no face, faces cannot be paired)."""


@dataclass
class FaceCheck:
    box: tuple[int, int, int, int]
    found_in_cloaked: bool
    ssim: float | None = None
    models: dict[str, dict] = field(default_factory=dict)

    @property
    def still_matches(self) -> bool:
        return any(m["would_still_match"] for m in self.models.values())


@dataclass
class VerifyReport:
    original: str
    cloaked: str
    faces: list[FaceCheck]

    @property
    def protected(self) -> bool:
        return all(not face.still_matches for face in self.faces)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["protected"] = self.protected
        for face, row in zip(self.faces, data["faces"], strict=True):
            row["still_matches"] = face.still_matches
        return data


def _rgb8(path: Path) -> np.ndarray:
    pixels = load_image(path).pixels[..., :3]
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    return np.ascontiguousarray(pixels)


@torch.inference_mode()
def verify(
    original: Path, cloaked: Path, recognisers: Sequence[str] = ("sface", "dlib", "facenet"),
    tracker: Tracker | None = None,
) -> tuple[VerifyReport, np.ndarray, np.ndarray]:  # fmt: skip
    """Compare every face of ``original`` with its counterpart in ``cloaked``."""
    before, after = _rgb8(original), _rgb8(cloaked)
    if before.shape != after.shape:
        raise VerifyError(
            f"{cloaked}: {after.shape[1]}x{after.shape[0]} pixels, but {original} is "
            f"{before.shape[1]}x{before.shape[0]}; compare the cloaked file with its own original"
        )
    tracker = tracker or Tracker(recognisers)
    faces_before = tracker.all_faces(before)
    if not faces_before:
        raise VerifyError(f"{original}: no face found, nothing to verify")
    paired = match_faces(faces_before, tracker.all_faces(after))
    checks = []
    for face, partner in zip(faces_before, paired, strict=True):
        box = tuple(round(v) for v in face.box)
        check = FaceCheck(box=box, found_in_cloaked=partner is not None)
        check.ssim = round(photo_quality(before, after, [face])["face_ssim"], 4)
        if partner is not None:
            a = tracker.models.embed(before, [face.landmarks])
            b = tracker.models.embed(after, [partner.landmarks])
            for name, spec in tracker.specs.items():
                value = float(spec.published_similarity(a[name], b[name])[0])
                check.models[name] = {
                    "similarity": round(value, 4),
                    "measure": "cosine similarity" if spec.metric == "cosine" else "distance",
                    "threshold": spec.match_threshold,
                    "would_still_match": bool(spec.same_person(a[name], b[name])[0]),
                }
        checks.append(check)
    checks.sort(key=lambda c: (c.box[1], c.box[0]))
    return VerifyReport(str(original), str(cloaked), checks), before, after
