"""The engine: detector and recogniser ensemble loaded once, photos cloaked one after another.

This is the object that the command line, the local server and the benchmarks share; loading
PyTorch and the models takes seconds, cloaking a photo should not pay for that again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facecloak.budget import CloakBudget, budget_for
from facecloak.cloak import DEFAULT_ENSEMBLE, Cloaker, Objective
from facecloak.detect import FaceDetector
from facecloak.imageio import ImageError, LoadedImage, load_image, save_image

Progress = Callable[[int, int], None]


@dataclass
class FaceReport:
    """One detected face: where it is and what cloaking it achieved."""

    box: tuple[int, int, int, int]  # x, y, width, height in the orientation-corrected photo
    size: float
    cloaked: bool
    reason: str = ""  # why a face was skipped
    ssim: float | None = None
    similarity: dict[str, float] = field(default_factory=dict)


@dataclass
class PhotoReport:
    """What happened to one photo; the command line prints it and writes it as JSON."""

    input: str
    output: str | None = None
    ok: bool = False
    error: str | None = None
    width: int = 0
    height: int = 0
    faces: list[FaceReport] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    @property
    def cloaked(self) -> int:
        return sum(face.cloaked for face in self.faces)

    @property
    def skipped(self) -> int:
        return sum(not face.cloaked for face in self.faces)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["faces_found"] = len(self.faces)
        data["faces_cloaked"] = self.cloaked
        data["faces_skipped"] = self.skipped
        return data


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto``; asking for CUDA where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r} (choose cpu, cuda or auto)")
    return torch.device(name)


class Engine:
    """Detects and cloaks faces; create once, call :meth:`cloak_pixels` or :meth:`cloak_file`."""

    def __init__(
        self,
        recognisers: Sequence[str] = DEFAULT_ENSEMBLE,
        device: str = "cpu",
        min_face: int = 40,
    ) -> None:
        started = time.perf_counter()
        self.device = resolve_device(device)
        self.detector = FaceDetector(min_face=min_face)
        self.cloaker = Cloaker(recognisers, self.device)
        self.load_seconds = time.perf_counter() - started

    def cloak_pixels(
        self,
        pixels: np.ndarray,
        budget: CloakBudget | str = "mid",
        *,
        seed: int = 0,
        objective: Objective = "untargeted",
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, list[FaceReport]]:
        """Cloak every protectable face in ``H x W x C`` pixels; returns new pixels and reports.

        Pixels keep their dtype (uint8, uint16 or float) and alpha; faces too small to protect
        are reported, not changed.
        """
        if isinstance(budget, str):
            budget = budget_for(budget)
        detection = self.detector.detect(np.ascontiguousarray(pixels[..., :3]))
        reports = [
            FaceReport(
                box=tuple(round(v) for v in face.box),
                size=round(face.size, 1),
                cloaked=False,
                reason=f"face too small to protect (under {self.detector.min_face} px)",
            )
            for face in detection.too_small
        ]
        if not detection.faces:
            return pixels.copy(), reports
        outcome = self.cloaker.cloak(
            pixels,
            [face.landmarks for face in detection.faces],
            budget,
            seed=seed,
            objective=objective,
            face_boxes=[face.box for face in detection.faces],
            progress=progress,
        )
        for face, result in zip(detection.faces, outcome.faces, strict=True):
            reports.append(
                FaceReport(
                    box=tuple(round(v) for v in face.box),
                    size=round(face.size, 1),
                    cloaked=True,
                    ssim=round(result.ssim, 4),
                    similarity={k: round(v, 4) for k, v in result.scores.items()},
                )
            )
        reports.sort(key=lambda r: (r.box[1], r.box[0]))
        return outcome.pixels, reports

    def cloak_file(
        self,
        source: str | Path,
        destination: str | Path,
        budget: CloakBudget | str = "mid",
        *,
        seed: int = 0,
        objective: Objective = "untargeted",
        overwrite: bool = False,
        jpeg_quality: int = 95,
        progress: Progress | None = None,
    ) -> PhotoReport:
        """Cloak one photo file into ``destination``; errors land in the report, not raised.

        The output is written from pixels (orientation baked in, ICC profile kept, no other
        metadata), atomically, never over the input.
        """
        started = time.perf_counter()
        report = PhotoReport(input=str(source), output=str(destination))
        try:
            image: LoadedImage = load_image(source)
            report.height, report.width = image.pixels.shape[:2]
            pixels, report.faces = self.cloak_pixels(
                image.pixels, budget, seed=seed, objective=objective, progress=progress
            )
            if not any(face.cloaked for face in report.faces):
                report.note = "no face to protect found; pixels written unchanged, metadata dropped"
            save_image(
                pixels,
                destination,
                icc_profile=image.icc_profile,
                jpeg_quality=jpeg_quality,
                overwrite=overwrite,
                protect=[Path(source)],
            )
            report.ok = True
        except ImageError as error:
            report.error = str(error)
            report.output = None
        report.seconds = round(time.perf_counter() - started, 2)
        return report
