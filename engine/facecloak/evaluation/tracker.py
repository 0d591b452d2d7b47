"""The tracker: finds and aligns faces on its own, embeds them, learns identities.

It stands for a company that scrapes photos: it never sees the engine's crops or landmarks,
only the pixels that were published.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facecloak.cloak import Cloaker
from facecloak.detect import Face, FaceDetector

# A tracker keeps smaller faces than the engine protects: half-size LFW faces are ~55 px.
TRACKER_MIN_FACE = 20


def central_face(faces: Sequence[Face], width: int, height: int) -> Face | None:
    """The face a face-centred photo is about: big and near the middle."""
    if not faces:
        return None

    def badness(face: Face) -> float:
        x, y, w, h = face.box
        off = np.hypot(x + w / 2 - width / 2, y + h / 2 - height / 2)
        return off / max(width, height) - face.size / max(width, height)

    return min(faces, key=badness)


class Tracker:
    """Re-detection, re-alignment and embedding with each named recogniser."""

    def __init__(self, recognisers: Sequence[str], device: str = "cpu") -> None:
        self.detector = FaceDetector(min_face=TRACKER_MIN_FACE)
        self.models = Cloaker(recognisers, device)
        self.names = [r.spec.name for r in self.models.recognisers]
        self.specs = {r.spec.name: r.spec for r in self.models.recognisers}

    def all_faces(self, pixels: np.ndarray) -> list[Face]:
        """Every face the tracker finds, small ones included (it keeps what it can use)."""
        detection = self.detector.detect(np.ascontiguousarray(pixels[..., :3]))
        return detection.faces + detection.too_small

    def find(self, pixels: np.ndarray) -> Face | None:
        """The tracker's own detection of the photo's main face (None: no face found)."""
        return central_face(self.all_faces(pixels), pixels.shape[1], pixels.shape[0])

    @torch.inference_mode()
    def embed(self, pixels: np.ndarray) -> dict[str, np.ndarray] | None:
        """Each recogniser's embedding of the main face, or None when no face is found."""
        face = self.find(pixels)
        if face is None:
            return None
        embedded = self.models.embed(pixels, [face.landmarks])
        return {name: value[0].float().cpu().numpy() for name, value in embedded.items()}
