"""The tracker's experiment, as in the Fawkes paper and its independent re-evaluations.

For each protected user: the user's train photos are cloaked; the tracker learns from those
plus clean photos of everyone else, then meets the user's clean test photos. Protection is the
share of those test photos the tracker does NOT recognise as the user. Leave-one-out cloaks
with the ensemble minus the tracker's model; an unseen model is never in any ensemble (FaceNet
by default): both are the figure for a recogniser nobody has.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facecloak.budget import budget_for
from facecloak.evaluation.classify import CLASSIFIERS
from facecloak.evaluation.dataset import Split, choose_splits, load_people, other_photos
from facecloak.evaluation.degrade import DEGRADATIONS
from facecloak.evaluation.quality import photo_quality
from facecloak.evaluation.tracker import Tracker
from facecloak.imageio import load_image

Progress = Callable[[int, int], None]


@dataclass
class EvalSettings:
    """What to run; the defaults finish in under 20 minutes on a 2-core CPU."""

    data: Path
    users: int = 4
    train: int = 6
    test: int = 12
    others_per_person: int = 8
    modes: tuple[str, ...] = ("mid",)
    recognisers: tuple[str, ...] = ("sface", "dlib")
    # Tracker models no cloak is made with: their protection is pure transfer, and costs no
    # extra cloaks (they judge the same cloaked photos).
    unseen: tuple[str, ...] = ("facenet",)
    degradations: tuple[str, ...] = ("saved", "jpeg75", "half")
    seed: int = 0
    device: str = "cpu"
    overrides: dict = field(default_factory=dict)
    leave_one_out: bool = True


@dataclass(frozen=True)
class CloakSetup:
    """One way of cloaking: a mode and the ensemble used to make the cloak."""

    mode: str
    ensemble: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.mode}:{'+'.join(self.ensemble)}"


def cloak_setups(settings: EvalSettings) -> list[CloakSetup]:
    """White-box (whole ensemble) and, per recogniser, the ensemble without it."""
    setups = []
    for mode in settings.modes:
        setups.append(CloakSetup(mode, settings.recognisers))
        for left_out in settings.recognisers:
            rest = tuple(r for r in settings.recognisers if r != left_out)
            if rest and settings.leave_one_out:
                setups.append(CloakSetup(mode, rest))
    return setups


def _pixels(path: Path) -> np.ndarray:
    return np.ascontiguousarray(load_image(path).pixels[..., :3])


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return (pixels >> 8).astype(np.uint8) if pixels.dtype == np.uint16 else pixels


class Experiment:
    """Runs the cloaks, the tracker's embeddings and the classifiers; returns plain data."""

    def __init__(self, settings: EvalSettings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.progress = progress
        people = load_people(settings.data, min_photos=4)
        self.people = people
        self.splits = choose_splits(
            people, settings.users, settings.train, settings.test, settings.seed
        )
        self.gallery = other_photos(people, settings.others_per_person, settings.seed)
        trackers = settings.recognisers + tuple(
            m for m in settings.unseen if m not in settings.recognisers
        )
        self.tracker = Tracker(trackers, settings.device)
        self._clean: dict[Path, dict[str, np.ndarray] | None] = {}
        self.example: tuple[np.ndarray, np.ndarray] | None = None

    def clean_embedding(self, path: Path) -> dict[str, np.ndarray] | None:
        if path not in self._clean:
            self._clean[path] = self.tracker.embed(_pixels(path))
        return self._clean[path]

    def run(self) -> dict:
        from facecloak.engine import Engine

        started = time.perf_counter()
        setups = cloak_setups(self.settings)
        total = len(setups) * sum(len(s.train) for s in self.splits)
        done = 0
        results: dict = {"baseline": self._baseline(), "setups": []}
        for setup in setups:
            engine = Engine(setup.ensemble, device=self.settings.device)
            budget = budget_for(setup.mode).with_overrides(**self.settings.overrides)
            cloak_seconds, faces = 0.0, 0
            quality: list[dict] = []
            cloaked: dict[str, list[dict[str, dict[str, np.ndarray] | None]]] = {}
            for split in self.splits:
                per_photo = []
                for index, path in enumerate(split.train):
                    original = _pixels(path)
                    tick = time.perf_counter()
                    pixels, reports = engine.cloak_pixels(
                        original, budget, seed=self.settings.seed + index
                    )
                    cloak_seconds += time.perf_counter() - tick
                    faces += sum(r.cloaked for r in reports)
                    pixels = _to_uint8(pixels)
                    if self.example is None:
                        self.example = (original, pixels)
                    found = self.tracker.find(original)
                    quality.append(photo_quality(original, pixels, [found] if found else []))
                    per_photo.append(
                        {name: self.tracker.embed(fn(pixels)) for name, fn in self._degrade()}
                    )
                    done += 1
                    if self.progress:
                        self.progress(done, total)
                cloaked[split.person.name] = per_photo
            row = {
                "mode": setup.mode,
                "ensemble": list(setup.ensemble),
                "faces": faces,
                "seconds_per_face": round(cloak_seconds / max(1, faces), 2),
                "quality": _summarise_quality(quality),
                "protection": self._protection(setup, cloaked),
            }
            results["setups"].append(row)
        results["seconds"] = round(time.perf_counter() - started, 1)
        results["settings"] = _settings_dict(self.settings)
        results["users"] = [
            {"name": s.person.name, "train": len(s.train), "test": len(s.test)} for s in self.splits
        ]
        return results

    def _degrade(self):
        return [(name, DEGRADATIONS[name]) for name in self.settings.degradations]

    def _database(self, user: str, own: list[dict[str, np.ndarray] | None], model: str):
        """Training vectors and labels: everyone else clean, the user as given in ``own``."""
        vectors, labels = [], []
        for name, paths in self.gallery.items():
            if name == user:
                continue
            for path in paths:
                embedding = self.clean_embedding(path)
                if embedding is not None:
                    vectors.append(embedding[model])
                    labels.append(name)
        for embedding in own:
            if embedding is not None:
                vectors.append(embedding[model])
                labels.append(user)
        return np.stack(vectors), np.asarray(labels)

    def _recognised(self, split: Split, own: list, model: str) -> dict[str, tuple[int, int]]:
        """Per classifier: (test photos recognised as the user, test photos with a face)."""
        tests = [self.clean_embedding(p) for p in split.test]
        tests = [t[model] for t in tests if t is not None]
        if not tests or not any(e is not None for e in own):
            return {name: (0, len(tests)) for name in CLASSIFIERS}
        train, labels = self._database(split.person.name, own, model)
        metric = self.tracker.specs[model].metric
        result = {}
        for name, classify in CLASSIFIERS.items():
            predicted = classify(train, labels, np.stack(tests), metric)
            result[name] = (int(np.sum(predicted == split.person.name)), len(tests))
        return result

    def _baseline(self) -> dict:
        """Accuracy with nothing cloaked: proof that the tracker works at all."""
        out: dict = {}
        for model in self.tracker.names:
            totals = {name: [0, 0] for name in CLASSIFIERS}
            for split in self.splits:
                own = [self.clean_embedding(p) for p in split.train]
                for name, (hit, count) in self._recognised(split, own, model).items():
                    totals[name][0] += hit
                    totals[name][1] += count
            out[model] = {name: _share(h, n) for name, (h, n) in totals.items()}
        return out

    def _protection(self, setup: CloakSetup, cloaked: dict) -> dict:
        """Per tracker model, degradation and classifier: share of test photos NOT recognised."""
        out: dict = {}
        for model in self.tracker.names:
            if model in setup.ensemble:
                kind = "white-box"
            elif model in self.settings.recognisers:
                kind = "leave-one-out"
            else:
                kind = "unseen"
            out[model] = {"kind": kind}
            for degradation in self.settings.degradations:
                totals = {name: [0, 0] for name in CLASSIFIERS}
                for split in self.splits:
                    own = [photo[degradation] for photo in cloaked[split.person.name]]
                    for name, (hit, count) in self._recognised(split, own, model).items():
                        totals[name][0] += count - hit
                        totals[name][1] += count
                out[model][degradation] = {n: _share(h, c) for n, (h, c) in totals.items()}
        return out


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _summarise_quality(rows: list[dict]) -> dict:
    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None and np.isfinite(r[key])]
        return round(float(np.mean(values)), 4) if values else None

    def low(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(float(np.min(values)), 4) if values else None

    return {
        "ssim_mean": mean("ssim"),
        "ssim_min": low("ssim"),
        "psnr_mean": mean("psnr"),
        "face_ssim_mean": mean("face_ssim"),
        "face_ssim_min": low("face_ssim"),
        "face_psnr_mean": mean("face_psnr"),
    }


def _settings_dict(settings: EvalSettings) -> dict:
    data = asdict(settings)
    data["data"] = str(settings.data)
    data["modes"] = list(settings.modes)
    data["recognisers"] = list(settings.recognisers)
    data["unseen"] = list(settings.unseen)
    data["degradations"] = list(settings.degradations)
    return data
