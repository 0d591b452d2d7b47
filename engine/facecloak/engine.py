"""The engine: detector and recogniser ensemble loaded once, photos cloaked one after another.

This is the object that the command line, the local server and the benchmarks share; loading
PyTorch and the models takes seconds, cloaking a photo should not pay for that again. Several
photos can also be cloaked together (:meth:`Engine.cloak_files`, :meth:`Engine.cloak_pixels_many`)
so that their faces share the models' passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facecloak.budget import CloakBudget, budget_for
from facecloak.cloak import (
    DEFAULT_ENSEMBLE,
    Cloaker,
    CloakOutcome,
    CloakTask,
    Objective,
    run_all,
)
from facecloak.detect import Detection, FaceDetector
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


@dataclass(eq=False)  # identity, not pixel-wise comparison
class PixelsTask:
    """One photo's pixels and how to cloak them, for :meth:`Engine.cloak_pixels_many`."""

    pixels: np.ndarray
    budget: CloakBudget | str = "mid"
    seed: int = 0
    objective: Objective = "untargeted"
    progress: Progress | None = None


@dataclass(eq=False)  # identity, not pixel-wise comparison
class FileTask:
    """One photo file and where its cloaked copy goes, for :meth:`Engine.cloak_files`."""

    source: str | Path
    destination: str | Path
    budget: CloakBudget | str = "mid"
    seed: int = 0
    objective: Objective = "untargeted"
    overwrite: bool = False
    jpeg_quality: int = 95
    progress: Progress | None = None


PixelsOutcome = tuple[np.ndarray, list[FaceReport]]


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
    ) -> PixelsOutcome:
        """Cloak every protectable face in ``H x W x C`` pixels; returns new pixels and reports.

        Pixels keep their dtype (uint8, uint16 or float) and alpha; faces too small to protect
        are reported, not changed.
        """
        task = PixelsTask(pixels, budget, seed=seed, objective=objective, progress=progress)
        outcome = self.cloak_pixels_many([task])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def cloak_pixels_many(self, tasks: Sequence[PixelsTask]) -> list[PixelsOutcome | Exception]:
        """:meth:`cloak_pixels` for several photos at once, their faces batched together.

        Each photo gets what it would get alone with its seed (up to a few levels in a few
        per cent of the pixels, from batched arithmetic). A task whose progress callback raised (a
        cancel) gets that exception in place of its outcome; the others are unaffected.
        """
        return run_all(self.cloak_stream, tasks)

    def cloak_stream(
        self,
        feed: Callable[[int], Sequence[PixelsTask]],
        deliver: Callable[[PixelsTask, PixelsOutcome | Exception], None],
    ) -> None:
        """Detect and cloak photos that keep arriving, their faces batched as they overlap.

        ``feed(live)`` is asked before every optimisation step for photos to add (``live``: how
        many are in flight); each is handed to ``deliver`` as soon as it is done. This is what
        the server runs, so requests queued while others are being cloaked share their steps.
        """
        waiting: dict[int, tuple[PixelsTask, Detection, list[FaceReport]]] = {}

        def detected(live: int) -> list[CloakTask]:
            cloak_tasks = []
            for task in feed(live):
                try:
                    detection = self.detector.detect(np.ascontiguousarray(task.pixels[..., :3]))
                except (MemoryError, RuntimeError, ValueError) as error:  # this photo only
                    deliver(task, error)
                    continue
                cloak_task = CloakTask(
                    task.pixels,
                    [face.landmarks for face in detection.faces],
                    budget_for(task.budget) if isinstance(task.budget, str) else task.budget,
                    seed=task.seed,
                    objective=task.objective,
                    face_boxes=[face.box for face in detection.faces],
                    progress=task.progress,
                )
                waiting[id(cloak_task)] = (task, detection, self._small_faces(detection))
                cloak_tasks.append(cloak_task)
            return cloak_tasks

        def cloaked(cloak_task: CloakTask, outcome: CloakOutcome | Exception) -> None:
            task, detection, faces = waiting.pop(id(cloak_task))
            if isinstance(outcome, Exception):
                deliver(task, outcome)
                return
            for face, result in zip(detection.faces, outcome.faces, strict=True):
                faces.append(
                    FaceReport(
                        box=tuple(round(v) for v in face.box),
                        size=round(face.size, 1),
                        cloaked=True,
                        ssim=round(result.ssim, 4),
                        similarity={k: round(v, 4) for k, v in result.scores.items()},
                    )
                )
            faces.sort(key=lambda r: (r.box[1], r.box[0]))
            deliver(task, (outcome.pixels, faces))

        self.cloaker.stream(detected, cloaked)

    def _small_faces(self, detection: Detection) -> list[FaceReport]:
        """Reports for the faces found but too small to protect."""
        return [
            FaceReport(
                box=tuple(round(v) for v in face.box),
                size=round(face.size, 1),
                cloaked=False,
                reason=f"face too small to protect (under {self.detector.min_face} px)",
            )
            for face in detection.too_small
        ]

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
        task = FileTask(
            source, destination, budget, seed=seed, objective=objective, overwrite=overwrite,
            jpeg_quality=jpeg_quality, progress=progress,
        )  # fmt: skip
        outcome = self.cloak_files([task])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def cloak_files(self, tasks: Sequence[FileTask]) -> list[PhotoReport | Exception]:
        """:meth:`cloak_file` for several files at once, their faces batched together.

        A file that cannot be read or written gets a report with the error; a task whose
        progress callback raised (a cancel) gets that exception and writes nothing.
        """
        started = time.perf_counter()
        reports = [PhotoReport(input=str(t.source), output=str(t.destination)) for t in tasks]
        images: dict[int, LoadedImage] = {}
        for index, task in enumerate(tasks):
            try:
                images[index] = load_image(task.source)
            except ImageError as error:
                reports[index].error, reports[index].output = str(error), None
        order = sorted(images)
        pixel_tasks = [
            PixelsTask(
                images[i].pixels, tasks[i].budget, seed=tasks[i].seed,
                objective=tasks[i].objective, progress=tasks[i].progress,
            )
            for i in order
        ]  # fmt: skip
        results: list[PhotoReport | Exception] = list(reports)
        for index, outcome in zip(order, self.cloak_pixels_many(pixel_tasks), strict=True):
            if isinstance(outcome, Exception):
                results[index] = outcome
                continue
            save_cloaked(tasks[index], images[index], outcome, reports[index])
        for report in reports:
            report.seconds = round(time.perf_counter() - started, 2)
        return results


def save_cloaked(
    task: FileTask, image: LoadedImage, outcome: PixelsOutcome, report: PhotoReport
) -> None:
    """Write one cloaked photo where ``task`` says and fill in its report; a write error lands
    in the report. Shared by :meth:`Engine.cloak_files` and the server."""
    pixels, report.faces = outcome
    report.height, report.width = image.pixels.shape[:2]
    if not any(face.cloaked for face in report.faces):
        report.note = "no face to protect found; pixels written unchanged, metadata dropped"
    try:
        save_image(
            pixels,
            task.destination,
            icc_profile=image.icc_profile,
            jpeg_quality=task.jpeg_quality,
            overwrite=task.overwrite,
            protect=[Path(task.source)],
        )
        report.ok = True
    except ImageError as error:
        report.error, report.output = str(error), None
