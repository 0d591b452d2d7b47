"""The cloak optimiser: full-resolution, SSIM-budgeted, robust to what trackers do.

Faces are grouped into regions (:mod:`facecloak.regions`), and the optimisation variable is a
full-resolution change of each region's pixels. Every step embeds each face through each
recogniser of the ensemble after fresh random transformations (:mod:`facecloak.eot`), pushes
the embeddings away from the person's own (untargeted, as Fawkes v1.0) or towards a decoy
identity (targeted), and charges DSSIM beyond the mode's budget (:mod:`facecloak.perceptual`).
Faces still weak after the mode's steps get extra steps; a final line search scales each change
back until the budget holds exactly on the quantised output.

Several photos can be cloaked together (:meth:`Cloaker.cloak_many`): their faces share each
model's forward and backward pass, while every photo keeps its own random draws, step count and
loss, so its pixels are what it would get alone (up to a few levels in a few per cent of the pixels:
batched arithmetic rounds differently, and Adam's normalisation can amplify that).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import kornia.filters
import numpy as np
import torch
from torch import nn

from facecloak.align import similarity_transform, warp_faces, warp_faces_from_pixels
from facecloak.budget import CloakBudget
from facecloak.crops import CroppedRegion
from facecloak.eot import (
    JPEG_SOURCE_LIMIT,
    Jitter,
    chip_ratio,
    draw_versions,
    face_scale,
    jittered_matrices,
)
from facecloak.jpeg import jpeg_round_trip
from facecloak.models import RecogniserSpec, get
from facecloak.perceptual import SsimReference, box_scales, exact_dssims, sampled_dssims
from facecloak.pixels import from_unit, quantise, to_unit
from facecloak.regions import (
    Region,
    box_from_landmarks,
    clip_box,
    group_faces,
    taper,
)

Objective = Literal["untargeted", "targeted"]
Progress = Callable[[int, int], None]
Embeddings = dict[str, torch.Tensor]  # model name -> faces x D
Task = TypeVar("Task")
Outcome = TypeVar("Outcome")

DEFAULT_ENSEMBLE = ("sface", "dlib")
SSIM_WEIGHT = 40.0  # penalty per unit of DSSIM over 90 % of the budget
WEAK_SHARE = 0.5  # a face counts as weak until past this share of the margin
WEAK_CHECK_EVERY = 10  # steps between weak-face checks
FIRST_CHECK = 10  # faces already past their margin this early stop here
CPU_CHIPS_PER_PASS = 8  # see Cloaker._embed_in_passes
MIN_GRADIENT_SIGMA = 0.8  # chip pixels: the least blur of a gradient (Cloaker._gradient_sigma)
# The final fit of each change to its budget (Cloaker._fit_budget): at most this many tries,
# each aiming at this share of the worst box's limit, until one that fits uses the floor share;
# a change under its budget may grow by up to FIT_GROWTH (within the per-pixel cap).
FIT_TRIES, FIT_AIM, FIT_FLOOR, FIT_GROWTH = 12, 0.99, 0.97, 2.0


@dataclass
class LoadedRecogniser:
    """A registry spec with its module loaded on the engine's device."""

    spec: RecogniserSpec
    model: nn.Module
    template: torch.Tensor


@dataclass
class FaceOutcome:
    """What the optimiser achieved for one face, on its own (un-jittered) alignment."""

    index: int
    ssim: float
    scores: dict[str, float] = field(default_factory=dict)  # model -> published similarity


@dataclass
class CloakOutcome:
    """The cloaked pixels, per-face figures, and the steps spent."""

    pixels: np.ndarray
    faces: list[FaceOutcome]
    steps: int


@dataclass(eq=False)  # identity, not pixel-wise comparison
class CloakTask:
    """One photo to cloak: its pixels, faces, budget and seed (see :meth:`Cloaker.cloak`)."""

    pixels: np.ndarray
    landmarks: Sequence[np.ndarray]
    budget: CloakBudget
    seed: int = 0
    objective: Objective = "untargeted"
    targets: Embeddings | None = None
    face_boxes: Sequence[tuple[float, float, float, float]] | None = None
    progress: Progress | None = None


@dataclass(eq=False)  # identity, not pixel-wise comparison
class _Run:
    """One photo's optimisation state while it shares steps with others."""

    task: CloakTask
    regions: list[Region]
    identity: Embeddings
    anchor: Embeddings
    sigmas: list[float]
    optimiser: _Adam
    generator: torch.Generator
    step: int = 0
    live: bool = True
    error: Exception | None = None  # what ended it early (a cancel), if anything

    @property
    def budget(self) -> CloakBudget:
        return self.task.budget

    @property
    def total_steps(self) -> int:
        return self.budget.steps + self.budget.extra_steps

    def active_regions(self) -> list[Region]:
        return [region for region in self.regions if region.active]


def run_all(
    stream: Callable[[Callable[[int], Sequence[Task]], Callable[[Task, Outcome], None]], None],
    tasks: Sequence[Task],
) -> list[Outcome]:
    """Hand all ``tasks`` to a continuous-batching ``stream`` at once and return each one's
    outcome in the tasks' order (what the list-taking ``*_many`` methods are)."""
    pending = list(tasks)
    results: dict[int, Outcome] = {}

    def feed(_live: int) -> list[Task]:
        batch, pending[:] = list(pending), []
        return batch

    def deliver(task: Task, outcome: Outcome) -> None:
        results[id(task)] = outcome

    stream(feed, deliver)
    return [results[id(task)] for task in tasks]


def load_recognisers(names: Sequence[str], device: torch.device) -> list[LoadedRecogniser]:
    """Load each named recogniser from its registry package onto ``device``."""
    loaded = []
    for name in names:
        spec = get(name)
        model = spec.load().to(device).eval()
        loaded.append(LoadedRecogniser(spec, model, torch.as_tensor(spec.template_array())))
    return loaded


def _smooth_gradient(delta: torch.Tensor, sigma: float) -> None:
    """Low-pass a change tensor's gradient in place (a preconditioner, not a resize).

    Small blurs use kornia's Gaussian; wide ones a box average spread back bilinearly, which
    costs one pass whatever the blur's width.
    """
    if delta.grad is None or sigma < 0.5:
        return
    if sigma < 1.0:
        size = 2 * math.ceil(2.5 * sigma) + 1
        delta.grad = kornia.filters.gaussian_blur2d(delta.grad, size, (sigma, sigma))
        return
    pooled = torch.nn.functional.avg_pool2d(delta.grad, round(2 * sigma), ceil_mode=True)
    delta.grad = torch.nn.functional.interpolate(
        pooled, size=delta.grad.shape[-2:], mode="bilinear", align_corners=False
    )


class _Adam:
    """Adam on the change tensors, written out (torch.optim imports torch._dynamo: ~3 s)."""

    def __init__(self, tensors: list[torch.Tensor], betas: tuple[float, float] = (0.9, 0.999)):
        self.tensors = tensors
        self.betas = betas
        self.moments = [(torch.zeros_like(t), torch.zeros_like(t)) for t in tensors]
        self.count = 0

    @torch.no_grad()
    def step(self, rate: float) -> None:
        self.count += 1
        beta1, beta2 = self.betas
        for tensor, (first, second) in zip(self.tensors, self.moments, strict=True):
            if tensor.grad is None:
                continue
            first.mul_(beta1).add_(tensor.grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(tensor.grad, tensor.grad, value=1 - beta2)
            corrected = second.div(1 - beta2**self.count).sqrt_().add_(1e-12)
            tensor.addcdiv_(first, corrected, value=-rate / (1 - beta1**self.count))
            tensor.grad = None


def _step_rate(budget: CloakBudget, step: int) -> float:
    """Cosine decay over the mode's steps from the full rate to a third of it (big moves first,
    finer placement last), then a third of it for the extra phase of weak faces.

    Decaying to zero wasted the last few steps: with the floor, LFW faces reached protection in
    fewer steps at the same protection (docs/evaluation.md)."""
    floor = budget.learning_rate / 3
    if step < budget.steps:
        cosine = 0.5 * (1 + math.cos(math.pi * step / budget.steps))
        return floor + (budget.learning_rate - floor) * cosine
    return floor


def _change_bounds(region: Region, budget: CloakBudget) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-pixel cap on a region's change, narrowed where a pixel is near black or white
    (made once per region)."""
    if region.bounds is None:
        region.bounds = (
            (-region.original).clamp(min=-budget.max_change),
            (1 - region.original).clamp(max=budget.max_change),
        )
    return region.bounds


def _dssim_limits(budget: CloakBudget, region: Region) -> list[float]:
    """The DSSIM limits of ``region``'s boxes (its faces', then its own), given its photo."""
    return budget.dssim_limits(len(region.faces), region.coverage, region.photo_faces)


def _next_scale(tried: list[tuple[float, float]], ceiling: float = 1.0) -> float:
    """The next scale to try (at most ``ceiling``), given the (scale, overshoot) pairs tried.

    The overshoot is modelled as a power of the scale: a square at first (DSSIM grows about as
    the square of a small change), then the power fitted to the last two tries, which aims
    well where quantisation and clipping bend the curve.
    """
    scale, overshoot = tried[-1]
    power = 2.0
    if len(tried) > 1:
        (s0, o0), (s1, o1) = tried[-2:]
        if s0 != s1 and o0 != o1:
            power = min(4.0, max(0.5, math.log(o1 / o0) / math.log(s1 / s0)))
    return min(ceiling, scale * (FIT_AIM / overshoot) ** (1.0 / power))


class Cloaker:
    """Holds the ensemble in memory and cloaks any number of photos with it."""

    def __init__(
        self,
        recognisers: Sequence[str] = DEFAULT_ENSEMBLE,
        device: str | torch.device = "cpu",
        jitter: Jitter | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.recognisers = load_recognisers(recognisers, self.device)
        self.jitter = jitter or Jitter()
        # Tiny gradients underflow into denormal floats, which slow CPU arithmetic several-fold.
        torch.set_flush_denormal(True)

    @torch.no_grad()
    def embed(self, pixels: np.ndarray, landmarks: Sequence[np.ndarray]) -> Embeddings:
        """Each recogniser's embedding of each face on its nominal alignment."""
        points = torch.as_tensor(np.asarray(landmarks, dtype=np.float32)).reshape(-1, 5, 2)
        result = {}
        for recogniser in self.recognisers:
            spec = recogniser.spec
            matrices = similarity_transform(points, recogniser.template)
            chips = warp_faces_from_pixels(pixels, matrices, spec.input_size, self.device)
            result[spec.name] = recogniser.model(chips)
        return result

    def cloak(
        self,
        pixels: np.ndarray,
        landmarks: Sequence[np.ndarray],
        budget: CloakBudget,
        *,
        seed: int = 0,
        objective: Objective = "untargeted",
        targets: Embeddings | None = None,
        face_boxes: Sequence[tuple[float, float, float, float]] | None = None,
        progress: Progress | None = None,
    ) -> CloakOutcome:
        """Cloak the faces at ``landmarks`` (full-resolution ``5 x 2`` arrays) in ``pixels``.

        ``pixels`` is ``H x W x C`` uint8, uint16 or float in [0, 1]; only RGB is changed (an
        alpha channel is carried through untouched). ``targets`` (model -> ``F x D``) is needed
        for the targeted objective: the decoy identity each face is pulled towards.
        ``face_boxes`` (x, y, w, h per face, as the detector gives them) are the areas whose
        SSIM the budget holds; without them a box is derived from the landmarks.
        """
        task = CloakTask(
            pixels, landmarks, budget, seed=seed, objective=objective, targets=targets,
            face_boxes=face_boxes, progress=progress,
        )  # fmt: skip
        outcome = self.cloak_many([task])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def cloak_many(self, tasks: Sequence[CloakTask]) -> list[CloakOutcome | Exception]:
        """Cloak several photos at once: one forward and backward pass per model per step for
        the faces of all of them, which keeps the CPU's (or a GPU's) arithmetic units busier.

        Each photo draws its random transformations from its own seed, counts its own steps
        and stops when its own faces are protected. An exception raised by a task's progress
        callback (a cancel) ends that task alone and is returned in its place.
        """
        return run_all(self.stream, tasks)

    def stream(
        self,
        feed: Callable[[int], Sequence[CloakTask]],
        deliver: Callable[[CloakTask, CloakOutcome | Exception], None],
    ) -> None:
        """Cloak photos that arrive while others are being cloaked (continuous batching).

        Before every step ``feed(live)`` is asked for new tasks (``live``: how many photos are
        in flight), which join the shared passes at their own step 0; each photo is handed to
        ``deliver`` as soon as it is done, not when the whole batch is. Returns once ``feed``
        has nothing more and every photo is delivered.
        """
        runs: list[_Run] = []
        while True:
            for task in feed(len(runs)):
                if task.objective == "targeted" and not task.targets:
                    deliver(task, ValueError("the targeted objective needs decoy embeddings"))
                    continue
                points = [np.asarray(p, dtype=np.float32).reshape(5, 2) for p in task.landmarks]
                if not points:
                    deliver(task, CloakOutcome(task.pixels.copy(), [], 0))
                    continue
                if not runs:
                    torch.manual_seed(task.seed)
                try:
                    runs.append(self._start(task, points))
                except (MemoryError, RuntimeError) as error:  # this photo fails, not the batch
                    deliver(task, error)
            live = self._live_runs(runs)
            for run in [run for run in runs if not run.live]:
                runs.remove(run)
                deliver(run.task, run.error or self._finish(run))
            if not live:
                return
            self._step(live)

    def _step(self, live: list[_Run]) -> None:
        """One optimisation step of every photo in flight."""
        with torch.no_grad():  # the gradient is routed by hand: see facecloak.crops
            cloaked = {
                id(region): CroppedRegion(region.cloaked())
                for run in live
                for region in run.active_regions()
            }
        self._step_loss(live, cloaked).backward()
        for run in live:
            for region, sigma in zip(run.regions, run.sigmas, strict=True):
                if id(region) in cloaked:
                    region.delta.grad = cloaked[id(region)].gradient() * region.window
                _smooth_gradient(region.delta, sigma)
                if region.moving is not None and region.delta.grad is not None:
                    region.delta.grad.mul_(region.moving)
            run.optimiser.step(_step_rate(run.budget, run.step))
            self._constrain(run.regions, run.budget, run.generator)
            run.step += 1
            run.live = run.step < run.total_steps
            if run.task.progress:
                try:
                    run.task.progress(min(run.step, run.budget.steps), run.budget.steps)
                except Exception as error:  # a cancel: this photo stops, the others go on
                    run.error = error
                    run.live = False

    def _start(self, task: CloakTask, landmarks: list[np.ndarray]) -> _Run:
        """A photo's regions, identity embeddings, optimiser and random stream."""
        regions = self._prepare(task.pixels, landmarks, task.face_boxes)
        identity = self.embed(task.pixels, landmarks)
        return _Run(
            task=task,
            regions=regions,
            identity=identity,
            anchor=task.targets if task.objective == "targeted" else identity,
            sigmas=[self._gradient_sigma(region) for region in regions],
            optimiser=_Adam([region.delta for region in regions]),
            generator=torch.Generator().manual_seed(task.seed),
        )

    def _live_runs(self, runs: list[_Run]) -> list[_Run]:
        """The photos that take part in the next step.

        Every few steps each photo's regions are checked: time goes where protection is
        missing, so a photo whose faces are all past their margin from their own identity is
        finished (whichever objective moved them there: a decoy is a means, not the goal).
        """
        for run in runs:
            if run.live and run.step >= FIRST_CHECK and run.step % WEAK_CHECK_EVERY == 0:
                self._mark_weak(run.regions, run.identity, run.budget)
                run.live = any(region.active for region in run.regions)
        return [run for run in runs if run.live]

    def _prepare(
        self,
        pixels: np.ndarray,
        landmarks: list[np.ndarray],
        face_boxes: Sequence[tuple[float, float, float, float]] | None,
    ) -> list[Region]:
        """Group faces into regions and give each its pixels, change tensor and boxes."""
        templates = [(r.template, r.spec.input_size) for r in self.recognisers]
        regions = group_faces(landmarks, templates, *pixels.shape[:2])
        coverage = sum(r.shape[0] * r.shape[1] for r in regions) / (
            pixels.shape[0] * pixels.shape[1]
        )
        for region in regions:
            region.coverage, region.photo_faces = coverage, len(landmarks)
            patch = pixels[region.top : region.bottom, region.left : region.right]
            region.original = to_unit(patch).to(self.device)
            region.reference = SsimReference(region.original)
            region.delta = torch.zeros_like(region.original, requires_grad=True)
            region.window = taper(*region.shape).to(self.device)
            for face in region.faces:
                region.points[face] = landmarks[face] - region.offset
                region.boxes[face] = (
                    box_from_landmarks(region.points[face], *region.shape)
                    if face_boxes is None
                    else clip_box(face_boxes[face], region)
                )
            if len(region.faces) > 1:
                region.build_zones()
            points = torch.tensor(np.stack([region.points[face] for face in region.faces]))
            region.chip_ratio = min(
                chip_ratio(similarity_transform(points, template)) for template, _ in templates
            )
        return regions

    def _gradient_sigma(self, region: Region) -> float:
        """Blur (in photo pixels) that spreads a region's gradient over about two chip pixels.

        A tracker's aligned crop of a big face reads a sparse subset of its pixels, so per-pixel
        steps on only those pixels would be noise that no tracker sees; and on a big face,
        patterns finer than a chip pixel or two cost full-resolution SSIM on smooth skin for
        little effect on the chip. A blur of one chip pixel (half of this) left SFace matching
        two of ten portraits with 500-px faces (bench/protect_portraits.py, docs/evaluation.md).
        Faces about a chip's size still get ``MIN_GRADIENT_SIGMA`` chip pixels: pixel-fine
        patterns are what JPEG and halving remove first (docs/evaluation.md: the tracker's
        classifiers recognised up to 11 % more of an LFW user's photos after JPEG 75 or at half
        size with none). The least is in chip pixels, so faces smaller than a chip are not
        blurred past what the recognisers read; over about 1.4 chip pixels, LFW's protection
        collapsed.
        """
        smallest = min(float(face_scale(torch.tensor(p)[None])[0]) for p in region.points.values())
        ratio = smallest / float(face_scale(self.recognisers[0].template[None])[0])
        return max(MIN_GRADIENT_SIGMA * ratio, ratio - 0.5)

    def _step_loss(self, runs: list[_Run], cloaked: dict[int, CroppedRegion]) -> torch.Tensor:
        """One step's objective: identity term over the ensemble plus the SSIM penalty, on the
        cloaked pixels of each active region (``cloaked``, by the region's id).

        All faces of all active regions of all photos go through each model in one batch; each
        face's terms are its own (:meth:`_identity_loss`), so its gradient is what it would be
        alone, whatever shares the batch or the photo.
        """
        loss = torch.zeros((), device=self.device)
        for recogniser in self.recognisers:
            spec = recogniser.spec
            chips: list[torch.Tensor] = []
            spans: list[tuple[_Run, list[int], int, int]] = []
            for run in runs:
                owners, first = [], sum(len(c) for c in chips)
                for region in run.active_regions():
                    # Each model draws its own versions: shared ones made each step half as
                    # varied, and the tracker's nearest-neighbour protection after JPEG 75 fell
                    # from 0.90-0.94 to 0.83 (docs/evaluation.md).
                    versions = draw_versions(
                        cloaked[id(region)], run.budget.samples, region.chip_ratio, self.jitter,
                        run.generator, run.budget.jpeg_probability,
                    )  # fmt: skip
                    for face in region.faces:
                        if face in region.resting:
                            continue
                        matrices = jittered_matrices(
                            torch.tensor(region.points[face]), recogniser.template,
                            spec.input_size, run.budget.samples, self.jitter, run.generator,
                        )  # fmt: skip
                        chips += [
                            version.chips(matrices[i : i + 1], spec.input_size)
                            for i, version in enumerate(versions)
                        ]
                        owners += [face] * run.budget.samples
                spans.append((run, owners, first, first + len(owners)))
            embeddings = self._embed_in_passes(recogniser.model, torch.cat(chips))
            for run, owners, first, last in spans:
                loss = loss + self._identity_loss(run, spec, embeddings[first:last], owners)
        for run in runs:
            for region in run.active_regions():
                boxes, reference = region.ssim_boxes(), region.reference
                limits = _dssim_limits(run.budget, region)
                dssims = sampled_dssims(cloaked[id(region)].crop, reference, boxes, run.generator)
                for dssim, limit in zip(dssims, limits, strict=True):
                    loss = loss + SSIM_WEIGHT * torch.relu(dssim - limit * 0.9)
        return loss

    def _embed_in_passes(self, model: nn.Module, chips: torch.Tensor) -> torch.Tensor:
        """The model on all chips, in passes of at most ``CPU_CHIPS_PER_PASS`` on the CPU.

        On the CPU a pass gets cheaper per chip up to about 8 chips, then dearer again (SFace
        costs 34 ms per chip in a pass of 8, 47 in one of 16 and 65 in one of 24; the caches
        run out), so the faces of many photos are split. A GPU takes them all at once.
        """
        if self.device.type != "cpu" or len(chips) <= CPU_CHIPS_PER_PASS:
            return model(chips)
        return torch.cat([model(part) for part in chips.split(CPU_CHIPS_PER_PASS)])

    def _identity_loss(
        self, run: _Run, spec: RecogniserSpec, embeddings: torch.Tensor, owners: list[int]
    ) -> torch.Tensor:
        """How close one photo's chips still are to who they show (or far from the decoy):
        each face's mean over its samples, summed over the faces.

        Summed, not averaged: each face's term must weigh against its own SSIM penalty the same
        in a crowd as alone. Averaged over a 24-face photo, it shrank 24-fold against penalties
        that did not, and faces stayed unprotected within an unspent budget (docs/evaluation.md).
        """
        owner = torch.as_tensor(owners, device=self.device)
        margin = run.budget.margin
        per_sample = 1.0 / run.budget.samples
        score = spec.match_score(embeddings, run.anchor[spec.name][owner])
        if run.task.objective == "untargeted":
            return torch.relu(score + margin).sum() * per_sample
        # Pull towards the decoy until the model calls it a match, and keep away from the
        # person's own identity as in the untargeted objective.
        own = spec.match_score(embeddings, run.identity[spec.name][owner])
        return (torch.relu(margin - score).sum() + torch.relu(own + margin).sum()) * per_sample

    @torch.no_grad()
    def _constrain(
        self, regions: list[Region], budget: CloakBudget, generator: torch.Generator
    ) -> None:
        """Per-pixel cap, valid pixel range, and the DSSIM budget, after every step.

        Adam moves every pixel it has a gradient for, so a penalty alone lets the change drift
        past the budget on big faces; scaling back to the estimate keeps each step inside it.
        In a region several faces share, each face's zone is scaled for its own box, and the
        whole change only for the region's: one scale for all let the face nearest its limit
        hold every other face of a crowd well under theirs.
        """
        for region in regions:
            if not region.active:
                continue
            region.delta.clamp_(*_change_bounds(region, budget))
            limits = [limit * 0.95 for limit in _dssim_limits(budget, region)]
            scales = box_scales(
                region.cloaked_crop, region.reference, region.ssim_boxes(), limits, generator
            )
            if len(region.faces) == 1:
                region.delta.mul_(min(scales))
                continue
            overall = scales[-1]
            # The region's cut falls where faces still move (everywhere, unless some rest):
            # resting faces keep their change, or every step would shave them while the
            # others regrow. A moving face is then cut for its own box relative to it.
            moving = region.moving
            region.delta.mul_(overall if moving is None else 1.0 - (1.0 - overall) * moving)
            cuts = [
                min(1.0, scale if face in region.resting else scale / overall)
                for face, scale in zip(region.faces, scales[:-1], strict=True)
            ]
            region.cut_faces(region.delta, cuts)

    @torch.no_grad()
    def _mark_weak(self, regions: list[Region], identity: Embeddings, budget: CloakBudget) -> None:
        """Keep optimising only the faces that some model still scores too close to its
        threshold (within ``WEAK_SHARE`` of the margin) on their nominal alignment after a JPEG
        round trip at quality 75; a region with none left stops.

        The others rest: their chips leave the step's batches, as a face alone in its region
        would stop, and each check measures them again, so a face that the change of its
        neighbours pulled back is optimised again. A stopped region no longer changes, so it is
        not measured again.
        """
        for region in regions:
            if not region.active:
                continue
            cloaked = region.cloaked()
            whole = cloaked.shape[-1] * cloaked.shape[-2] <= JPEG_SOURCE_LIMIT
            if whole:
                cloaked = jpeg_round_trip(cloaked, 75.0)
            points = torch.tensor(np.stack([region.points[f] for f in region.faces]))
            worst = torch.full((len(region.faces),), -math.inf)
            for recogniser in self.recognisers:
                spec = recogniser.spec
                matrices = similarity_transform(points, recogniser.template).to(self.device)
                chips = warp_faces(cloaked, matrices, spec.input_size)
                if not whole:
                    chips = jpeg_round_trip(chips, 75.0)
                score = spec.match_score(recogniser.model(chips), identity[spec.name][region.faces])
                worst = torch.maximum(worst, score.cpu())
            weak = worst > -budget.margin * WEAK_SHARE
            region.rest(
                {face for face, w in zip(region.faces, weak.tolist(), strict=True) if not w}
            )
            region.active = bool(weak.any())

    @staticmethod
    def _fit_budget(
        region: Region, budget: CloakBudget, dtype: np.dtype
    ) -> tuple[torch.Tensor, list[float]]:
        """The region's quantised cloaked pixels, its change scaled back just enough that every
        box meets its DSSIM limit, and the boxes' DSSIMs.

        Fixed 15 % cuts left a big face's region up to a quarter of its budget unused. Here the
        worst box's overshoot is modelled as a power of the scale (:func:`_next_scale`), and
        the search stops once the best scale that fits uses ``FIT_FLOOR`` of the budget. A
        change that never fits is dropped: the budget is a promise. A change that ends under
        its budget grows, by up to ``FIT_GROWTH`` and within the per-pixel cap: the per-step
        projection charges noisy tile estimates and only ever cuts, so a big face could end at
        70 % of its budget (a 557-px face at SSIM 0.986, still matched by dlib). In a region of
        several faces, each face's zone is first cut to its own box's limit (:meth:`_fit_faces`).
        """
        change = region.delta * region.window
        boxes = region.ssim_boxes()
        limits = _dssim_limits(budget, region)
        if len(region.faces) > 1:
            Cloaker._fit_faces(region, change, limits[:-1], dtype)
        low, high = (bound * region.window for bound in _change_bounds(region, budget))
        best: tuple[torch.Tensor, list[float]] | None = None
        best_share = -1.0  # the share of the budget the best fitting try uses
        tried: list[tuple[float, float]] = []  # (scale, overshoot)
        scale = 1.0
        for _ in range(FIT_TRIES):
            scaled = change * scale if scale <= 1.0 else torch.clamp(change * scale, low, high)
            quantised = quantise(region.original + scaled, dtype)
            dssims = [float(d) for d in exact_dssims(quantised, region.reference, boxes)]
            overshoot = max(d / limit for d, limit in zip(dssims, limits, strict=True))
            if best_share < overshoot <= 1.0:
                best, best_share = (quantised, dssims), overshoot
                if scale == FIT_GROWTH or overshoot >= FIT_FLOOR:
                    break
            tried.append((scale, max(overshoot, 1e-9)))
            scale = _next_scale(tried, FIT_GROWTH)
        if best is None:
            return region.original.clone(), [0.0] * len(boxes)
        return best

    @staticmethod
    def _fit_faces(
        region: Region, change: torch.Tensor, limits: list[float], dtype: np.dtype
    ) -> None:
        """Cut each face's zone of a shared region's ``change`` (in place) until its box is
        within ``FIT_FLOOR`` .. 1 of its own limit, or within it uncut; the whole change is
        then fitted as one (the region's box, and what the zones' overlaps leave)."""
        faces = len(region.faces)
        boxes = region.ssim_boxes()[:faces]
        cuts = [1.0] * faces
        tried: list[list[tuple[float, float]]] = [[] for _ in range(faces)]
        for _ in range(FIT_TRIES):
            trial = change.clone()
            region.cut_faces(trial, cuts)
            quantised = quantise(region.original + trial, dtype)
            dssims = exact_dssims(quantised, region.reference, boxes)
            shares = [float(d) / limit for d, limit in zip(dssims, limits, strict=True)]
            open_faces = [
                f for f in range(faces)
                if shares[f] > 1.0 or (shares[f] < FIT_FLOOR and cuts[f] < 1.0)
            ]  # fmt: skip
            if not open_faces:
                break
            for f in open_faces:
                tried[f].append((cuts[f], max(shares[f], 1e-9)))
                cuts[f] = _next_scale(tried[f])
        region.cut_faces(change, cuts)

    @torch.no_grad()
    def _finish(self, run: _Run) -> CloakOutcome:
        """Quantise, enforce the SSIM budget exactly, write the regions, and measure."""
        pixels, regions, identity, budget = run.task.pixels, run.regions, run.identity, run.budget
        output = pixels.copy()
        ssim: dict[int, float] = {}
        landmarks: dict[int, np.ndarray] = {}
        for region in regions:
            quantised, dssims = self._fit_budget(region, budget, pixels.dtype)
            patch = from_unit(quantised, pixels.dtype)
            output[region.top : region.bottom, region.left : region.right, :3] = patch
            for position, face in enumerate(region.faces):
                ssim[face] = 1.0 - 2.0 * dssims[position]
                landmarks[face] = region.points[face] + region.offset
        order = sorted(landmarks)
        after = self.embed(output, [landmarks[face] for face in order])
        outcomes = []
        for face in order:
            scores = {
                r.spec.name: float(
                    r.spec.published_similarity(
                        after[r.spec.name][face : face + 1], identity[r.spec.name][face : face + 1]
                    )[0]
                )
                for r in self.recognisers
            }
            outcomes.append(FaceOutcome(index=face, ssim=ssim[face], scores=scores))
        return CloakOutcome(output, outcomes, run.step)
