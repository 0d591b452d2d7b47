"""The cloak optimiser: full-resolution, SSIM-budgeted, robust to what trackers do.

Faces are grouped into regions (faces whose working areas overlap share one), and the
optimisation variable is a full-resolution change of each region's pixels. Every step embeds
each face through each recogniser of the ensemble after fresh random transformations
(:mod:`facecloak.eot`), pushes the embeddings away from the person's own (untargeted, as Fawkes
v1.0) or towards a decoy identity (targeted), and charges any face-box SSIM loss beyond the
mode's budget. A final line search scales the change back until the budget holds exactly on the
quantised output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import kornia.filters
import kornia.metrics
import numpy as np
import torch
from torch import nn

from facecloak.align import similarity_transform, warp_faces
from facecloak.budget import CloakBudget
from facecloak.eot import (
    JPEG_SOURCE_LIMIT,
    Jitter,
    face_scale,
    jittered_matrices,
    jpeg,
    sample_chips,
)
from facecloak.models import RecogniserSpec, get

Objective = Literal["untargeted", "targeted"]
Progress = Callable[[int, int], None]

DEFAULT_ENSEMBLE = ("sface", "dlib")
REGION_MARGIN = 0.12  # extra room around the chips' footprint for jitter, per side
TAPER = 0.12  # share of each region side over which the change fades to zero at its border
SSIM_WINDOW = 11
SSIM_WEIGHT = 40.0
PROJECTION_TILES = 3  # tiles per box for the per-step DSSIM estimate
WEAK_SHARE = 0.5  # a face counts as weak until past this share of the margin
SSIM_TILE = 192  # side of the random tile whose SSIM each step charges


@dataclass
class LoadedRecogniser:
    """A registry spec with its module loaded on the engine's device."""

    spec: RecogniserSpec
    model: nn.Module
    template: torch.Tensor


@dataclass
class _Region:
    """A rectangle of the photo that one change tensor covers, and the faces inside it."""

    top: int
    left: int
    bottom: int
    right: int
    faces: list[int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left


@dataclass
class FaceOutcome:
    """What the optimiser achieved for one face, on its own (un-jittered) alignment."""

    index: int
    box: tuple[int, int, int, int]  # top, left, bottom, right of the face box used for SSIM
    ssim: float
    scores: dict[str, float] = field(default_factory=dict)  # model -> similarity after cloaking


@dataclass
class CloakOutcome:
    """The cloaked pixels and per-face figures."""

    pixels: np.ndarray
    faces: list[FaceOutcome]
    steps: int


def load_recognisers(names: Sequence[str], device: torch.device) -> list[LoadedRecogniser]:
    """Load each named recogniser from its registry package onto ``device``."""
    loaded = []
    for name in names:
        spec = get(name)
        model = spec.load().to(device).eval()
        template = torch.as_tensor(spec.template_array())
        loaded.append(LoadedRecogniser(spec, model, template))
    return loaded


def _to_unit(pixels: np.ndarray) -> torch.Tensor:
    """Integer or float ``H x W x C`` pixels to a ``1 x 3 x H x W`` float tensor in [0, 1]."""
    if pixels.dtype == np.uint8:
        scale = 255.0
    elif pixels.dtype == np.uint16:
        scale = 65535.0
    else:
        scale = 1.0
    rgb = torch.from_numpy(np.array(pixels[..., :3], dtype=np.float32)) / scale
    return rgb.permute(2, 0, 1)[None]


def _from_unit(region: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """``1 x 3 x h x w`` [0, 1] floats back to ``h x w x 3`` pixels of ``dtype``, rounded."""
    array = region[0].permute(1, 2, 0).clamp(0, 1).detach().cpu().numpy()
    if dtype == np.uint8:
        return np.rint(array * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(array * 65535.0).astype(np.uint16)
    return array.astype(dtype)


def _chip_footprint(
    landmarks: np.ndarray, recognisers: Sequence[LoadedRecogniser]
) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of every recogniser's chip mapped back into the photo."""
    xs, ys = [], []
    for recogniser in recognisers:
        size = recogniser.spec.input_size
        points = torch.tensor(landmarks, dtype=torch.float32)[None]
        matrix = similarity_transform(points, recogniser.template)[0]
        full = torch.cat([matrix, torch.tensor([[0.0, 0.0, 1.0]])]).to(torch.float64)
        inverse = torch.linalg.inv(full)
        corners = torch.tensor(
            [[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]],
            dtype=torch.float64,
        )
        mapped = (inverse @ corners.T).T
        xs += mapped[:, 0].tolist()
        ys += mapped[:, 1].tolist()
    return min(xs), min(ys), max(xs), max(ys)


def _regions(
    landmarks: Sequence[np.ndarray],
    recognisers: Sequence[LoadedRecogniser],
    height: int,
    width: int,
) -> list[_Region]:
    """One region per face, merged where they overlap so no pixel has two owners."""
    boxes = []
    for points in landmarks:
        x0, y0, x1, y1 = _chip_footprint(points, recognisers)
        pad_x, pad_y = (x1 - x0) * REGION_MARGIN, (y1 - y0) * REGION_MARGIN
        boxes.append(
            [
                max(0, math.floor(y0 - pad_y)),
                max(0, math.floor(x0 - pad_x)),
                min(height, math.ceil(y1 + pad_y) + 1),
                min(width, math.ceil(x1 + pad_x) + 1),
            ]
        )
    regions = [_Region(*box, faces=[index]) for index, box in enumerate(boxes)]
    merged = True
    while merged:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                a, b = regions[i], regions[j]
                if a.top < b.bottom and b.top < a.bottom and a.left < b.right and b.left < a.right:
                    regions[i] = _Region(
                        min(a.top, b.top),
                        min(a.left, b.left),
                        max(a.bottom, b.bottom),
                        max(a.right, b.right),
                        a.faces + b.faces,
                    )
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    return regions


def _taper(height: int, width: int) -> torch.Tensor:
    """A window that is 1 inside and fades to 0 at the region's border (no visible seam)."""

    def ramp(length: int) -> torch.Tensor:
        edge = max(1, round(length * TAPER))
        position = torch.arange(length, dtype=torch.float32)
        distance = torch.minimum(position + 1, length - position) / edge
        return 0.5 - 0.5 * torch.cos(math.pi * distance.clamp(max=1.0))

    return (ramp(height)[:, None] * ramp(width)[None, :])[None, None]


def _face_box(points: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """The face area whose SSIM is budgeted: a box around the landmarks, sized by the face."""
    scale = float(face_scale(torch.as_tensor(points)[None])[0])
    centre = points.mean(axis=0)
    half_w, half_h = 1.1 * scale, 1.35 * scale
    top = max(0, math.floor(centre[1] - half_h))
    left = max(0, math.floor(centre[0] - half_w))
    bottom = min(height, math.ceil(centre[1] + 1.1 * scale))
    right = min(width, math.ceil(centre[0] + half_w))
    return top, left, bottom, right


def _clip_box(box: Sequence[float], region: _Region) -> tuple[int, int, int, int]:
    """A detector's (x, y, w, h) box as (top, left, bottom, right) inside ``region``."""
    x, y, w, h = box
    top = min(max(0, math.floor(y) - region.top), region.shape[0] - 1)
    left = min(max(0, math.floor(x) - region.left), region.shape[1] - 1)
    bottom = max(top + 1, min(region.shape[0], math.ceil(y + h) - region.top))
    right = max(left + 1, min(region.shape[1], math.ceil(x + w) - region.left))
    return top, left, bottom, right


def _similarity(spec: RecogniserSpec, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A match score in units of the model's threshold: > 0 means "same person"."""
    distance = spec.distance(a, b)
    if spec.metric == "cosine":
        return ((1.0 - distance) - spec.match_threshold) / (1.0 - spec.match_threshold)
    return (spec.match_threshold - distance) / spec.match_threshold


def _raw_similarity(spec: RecogniserSpec, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity for cosine models, Euclidean distance for the others (as published)."""
    distance = spec.distance(a, b)
    return 1.0 - distance if spec.metric == "cosine" else distance


def _smooth_gradients(deltas: list[torch.Tensor], sigmas: list[float]) -> None:
    """Low-pass each change tensor's gradient in place (a preconditioner, not a resize).

    Small blurs use kornia's Gaussian; wide ones a box average and bilinear spread back,
    which costs one pass whatever the blur's width.
    """
    for delta, sigma in zip(deltas, sigmas, strict=True):
        if delta.grad is None or sigma < 0.5:
            continue
        if sigma < 1.0:
            size = 2 * math.ceil(2.5 * sigma) + 1
            delta.grad = kornia.filters.gaussian_blur2d(delta.grad, size, (sigma, sigma))
            continue
        factor = round(2 * sigma)
        pooled = torch.nn.functional.avg_pool2d(delta.grad, factor, ceil_mode=True)
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

    def _gradient_sigma(self, points: dict[int, np.ndarray]) -> float:
        """Blur (in photo pixels) that spreads a region's gradient over what one chip pixel
        covers: a tracker's aligned crop of a big face reads a sparse subset of its pixels, so
        per-pixel steps on only those pixels would be noise that no tracker sees."""
        smallest = min(float(face_scale(torch.tensor(p)[None])[0]) for p in points.values())
        template = self.recognisers[0].template
        chip_scale = float(face_scale(template[None])[0])
        return max(0.0, 0.5 * smallest / chip_scale - 0.25)

    @torch.no_grad()
    def embed(self, pixels: np.ndarray, landmarks: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Each recogniser's embedding of each face on its nominal alignment."""
        image = _to_unit(pixels).to(self.device)
        points = torch.as_tensor(np.asarray(landmarks, dtype=np.float32)).reshape(-1, 5, 2)
        result = {}
        for recogniser in self.recognisers:
            size = recogniser.spec.input_size
            matrices = similarity_transform(points, recogniser.template).to(self.device)
            chips = warp_faces(image, matrices, size)
            result[recogniser.spec.name] = recogniser.model(chips)
        return result

    def cloak(
        self,
        pixels: np.ndarray,
        landmarks: Sequence[np.ndarray],
        budget: CloakBudget,
        *,
        seed: int = 0,
        objective: Objective = "untargeted",
        targets: dict[str, torch.Tensor] | None = None,
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
        if objective == "targeted" and not targets:
            raise ValueError("the targeted objective needs decoy embeddings (targets)")
        landmarks = [np.asarray(p, dtype=np.float32).reshape(5, 2) for p in landmarks]
        output = pixels.copy()
        if not landmarks:
            return CloakOutcome(output, [], 0)
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        height, width = pixels.shape[:2]
        regions = _regions(landmarks, self.recognisers, height, width)
        originals, deltas, windows, local_points, boxes = [], [], [], [], {}
        for region in regions:
            patch = pixels[region.top : region.bottom, region.left : region.right]
            originals.append(_to_unit(patch).to(self.device))
            deltas.append(torch.zeros_like(originals[-1], requires_grad=True))
            windows.append(_taper(*region.shape).to(self.device))
            offset = np.array([region.left, region.top], dtype=np.float32)
            local_points.append({face: landmarks[face] - offset for face in region.faces})
            for face in region.faces:
                if face_boxes is None:
                    boxes[face] = _face_box(local_points[-1][face], *region.shape)
                else:
                    boxes[face] = _clip_box(face_boxes[face], region)
        identity = self.embed(pixels, landmarks)
        smoothing = [self._gradient_sigma(local_points[i]) for i in range(len(regions))]
        anchor = targets if objective == "targeted" else identity
        optimiser = _Adam(deltas)
        active = [True] * len(regions)
        total = budget.steps + budget.extra_steps
        step = 0
        while step < total and any(active):
            if step >= budget.steps and (step - budget.steps) % 10 == 0:
                # Faces the main phase left weak (checked through a JPEG at quality 75) get
                # extra steps; the others are done, so time goes where protection is missing.
                active = self._weak_regions(regions, originals, deltas, windows, local_points,
                                            anchor, budget)  # fmt: skip
                if not any(active):
                    break
            loss = self._step_loss(
                regions, originals, deltas, windows, local_points, boxes,
                identity, anchor, objective, budget, generator, active,
            )  # fmt: skip
            loss.backward()
            _smooth_gradients(deltas, smoothing)
            # Cosine decay of the step size: big moves first, fine placement at the end; the
            # extra phase for weak faces runs at a third of the initial rate.
            if step < budget.steps:
                rate = 0.5 * budget.learning_rate * (1 + math.cos(math.pi * step / budget.steps))
            else:
                rate = budget.learning_rate / 3
            optimiser.step(rate)
            with torch.no_grad():
                for index, (delta, original) in enumerate(zip(deltas, originals, strict=True)):
                    if not active[index]:
                        continue
                    delta.clamp_(-budget.max_change, budget.max_change)
                    delta.copy_((original + delta).clamp(0, 1) - original)
                    self._project_to_budget(
                        delta, original, windows[index], regions[index], boxes, budget, generator
                    )
            step += 1
            if progress:
                progress(min(step, budget.steps), budget.steps)
        return self._finish(
            pixels, output, regions, originals, deltas, windows, local_points, boxes,
            identity, budget,
        )  # fmt: skip

    def _step_loss(
        self,
        regions: list[_Region],
        originals: list[torch.Tensor],
        deltas: list[torch.Tensor],
        windows: list[torch.Tensor],
        local_points: list[dict[int, np.ndarray]],
        boxes: dict[int, tuple[int, int, int, int]],
        identity: dict[str, torch.Tensor],
        anchor: dict[str, torch.Tensor],
        objective: Objective,
        budget: CloakBudget,
        generator: torch.Generator,
        active: list[bool],
    ) -> torch.Tensor:
        """One step's objective: identity term over the ensemble plus the SSIM penalty."""
        cloaked = [
            (original + delta * window).clamp(0, 1)
            for original, delta, window in zip(originals, deltas, windows, strict=True)
        ]
        loss = torch.zeros((), device=self.device)
        for recogniser in self.recognisers:
            spec = recogniser.spec
            chips, owners = [], []
            for region_index, region in enumerate(regions):
                if not active[region_index]:
                    continue
                for face in region.faces:
                    points = torch.tensor(local_points[region_index][face])
                    matrices = jittered_matrices(
                        points, recogniser.template, spec.input_size, budget.samples,
                        self.jitter, generator,
                    )  # fmt: skip
                    chips.append(
                        sample_chips(
                            cloaked[region_index], matrices.to(self.device), spec.input_size,
                            self.jitter, generator, budget.jpeg_probability,
                        )
                    )  # fmt: skip
                    owners += [face] * budget.samples
            embeddings = recogniser.model(torch.cat(chips))
            owner_index = torch.as_tensor(owners, device=self.device)
            score = _similarity(spec, embeddings, anchor[spec.name][owner_index])
            if objective == "untargeted":
                loss = loss + torch.relu(score + budget.margin).mean()
            else:
                # Pull towards the decoy until the model calls it a match, and keep away from
                # the person's own identity as in the untargeted objective.
                own = _similarity(spec, embeddings, identity[spec.name][owner_index])
                loss = loss + torch.relu(budget.margin - score).mean()
                loss = loss + torch.relu(own + budget.margin).mean()
        for region_index, region in enumerate(regions):
            if not active[region_index]:
                continue
            for dssim in self._sampled_dssims(
                cloaked[region_index], originals[region_index], region, boxes, generator
            ):
                loss = loss + SSIM_WEIGHT * torch.relu(dssim - budget.dssim * 0.9)
        return loss

    @torch.no_grad()
    def _weak_regions(
        self,
        regions: list[_Region],
        originals: list[torch.Tensor],
        deltas: list[torch.Tensor],
        windows: list[torch.Tensor],
        local_points: list[dict[int, np.ndarray]],
        anchor: dict[str, torch.Tensor],
        budget: CloakBudget,
    ) -> list[bool]:
        """Regions holding a face that some model still scores too close to its threshold
        (within ``WEAK_SHARE`` of the margin) on its nominal alignment after a JPEG round trip
        at quality 75."""
        weak = []
        for index, region in enumerate(regions):
            cloaked = (originals[index] + deltas[index] * windows[index]).clamp(0, 1)
            whole = cloaked.shape[-1] * cloaked.shape[-2] <= JPEG_SOURCE_LIMIT
            if whole:
                cloaked = jpeg(cloaked, 75.0)
            points = torch.tensor(np.stack([local_points[index][f] for f in region.faces]))
            worst = -math.inf
            for recogniser in self.recognisers:
                spec = recogniser.spec
                matrices = similarity_transform(points, recogniser.template).to(self.device)
                chips = warp_faces(cloaked, matrices, spec.input_size)
                if not whole:
                    chips = jpeg(chips, 75.0)
                score = _similarity(spec, recogniser.model(chips), anchor[spec.name][region.faces])
                worst = max(worst, float(score.max()))
            weak.append(worst > -budget.margin * WEAK_SHARE)
        return weak

    def _project_to_budget(
        self,
        delta: torch.Tensor,
        original: torch.Tensor,
        window: torch.Tensor,
        region: _Region,
        boxes: dict[int, tuple[int, int, int, int]],
        budget: CloakBudget,
        generator: torch.Generator,
    ) -> None:
        """Shrink a region's change when its estimated DSSIM exceeds the budget.

        Adam moves every pixel it has a gradient for, so a penalty alone lets the change drift
        past the budget on big faces; this scaling (DSSIM grows about as the square of a small
        change) keeps every step inside it. The estimate averages a few random tiles per box.
        """
        cloaked = (original + delta * window).clamp(0, 1)
        exact = region.shape[0] * region.shape[1] <= SSIM_TILE * SSIM_TILE * 2
        samples = [
            self._sampled_dssims(cloaked, original, region, boxes, generator)
            for _ in range(1 if exact else PROJECTION_TILES)
        ]
        estimates = [
            sum(float(d[i]) for d in samples) / len(samples) for i in range(len(samples[0]))
        ]
        worst = float(max(estimates))
        target = budget.dssim * 0.95
        if worst > target:
            delta.mul_(math.sqrt(target / worst))

    @staticmethod
    def _sampled_dssims(
        cloaked: torch.Tensor,
        original: torch.Tensor,
        region: _Region,
        boxes: dict[int, tuple[int, int, int, int]],
        generator: torch.Generator,
    ) -> list[torch.Tensor]:
        """DSSIM of each face box and of the whole region, each on one random tile at most
        ``SSIM_TILE`` square: the same expectation as the full map at a cost that does not grow
        with the photo's resolution (the exact figure is enforced once, at the end). Small
        regions get the exact figure from one map."""
        height, width = region.shape
        if height * width <= SSIM_TILE * SSIM_TILE * 2:
            return Cloaker._dssims(cloaked, original, region, boxes)
        pad = SSIM_WINDOW // 2
        result = []
        for top, left, bottom, right in [*(boxes[f] for f in region.faces), (0, 0, height, width)]:
            if bottom - top > SSIM_TILE:
                top += int(torch.randint(bottom - top - SSIM_TILE + 1, (), generator=generator))
                bottom = top + SSIM_TILE
            if right - left > SSIM_TILE:
                left += int(torch.randint(right - left - SSIM_TILE + 1, (), generator=generator))
                right = left + SSIM_TILE
            t, lft = max(0, top - pad), max(0, left - pad)
            b, r = min(height, bottom + pad), min(width, right + pad)
            ssim_map = kornia.metrics.ssim(
                cloaked[..., t:b, lft:r], original[..., t:b, lft:r], SSIM_WINDOW, padding="same"
            )
            inner = ssim_map[..., top - t : bottom - t, left - lft : right - lft]
            result.append((1.0 - inner.mean()) / 2.0)
        return result

    @staticmethod
    def _dssims(
        cloaked: torch.Tensor,
        original: torch.Tensor,
        region: _Region,
        boxes: dict[int, tuple[int, int, int, int]],
    ) -> list[torch.Tensor]:
        """Fawkes' DSSIM over each face box and over the whole region (hair, background).

        One kornia SSIM map (11-px Gaussian window) serves every box of the region.
        """
        ssim_map = kornia.metrics.ssim(cloaked, original, SSIM_WINDOW, padding="same")
        boxes_here = [boxes[face] for face in region.faces] + [(0, 0, *region.shape)]
        return [
            (1.0 - ssim_map[..., top:bottom, left:right].mean()) / 2.0
            for top, left, bottom, right in boxes_here
        ]

    @torch.no_grad()
    def _finish(
        self,
        pixels: np.ndarray,
        output: np.ndarray,
        regions: list[_Region],
        originals: list[torch.Tensor],
        deltas: list[torch.Tensor],
        windows: list[torch.Tensor],
        local_points: list[dict[int, np.ndarray]],
        boxes: dict[int, tuple[int, int, int, int]],
        identity: dict[str, torch.Tensor],
        budget: CloakBudget,
    ) -> CloakOutcome:
        """Quantise, enforce the SSIM budget exactly, write the regions, and measure."""
        outcomes: list[FaceOutcome] = []
        for region_index, region in enumerate(regions):
            original = originals[region_index]
            change = deltas[region_index] * windows[region_index]
            scale = 1.0
            for _ in range(12):
                quantised = self._quantise(original + change * scale, pixels.dtype)
                worst = max(float(d) for d in self._dssims(quantised, original, region, boxes))
                if os.environ.get("FACECLOAK_DEBUG"):
                    print(f"region {region_index} scale {scale:.3f} worst dssim {worst:.4f}")
                if worst <= budget.dssim:
                    break
                scale *= 0.85
            dssims = self._dssims(quantised, original, region, boxes)
            patch = _from_unit(quantised, pixels.dtype)
            output[region.top : region.bottom, region.left : region.right, :3] = patch
            for face in region.faces:
                outcomes.append(
                    FaceOutcome(
                        index=face,
                        box=tuple(
                            int(v) + o
                            for v, o in zip(boxes[face], (region.top, region.left) * 2, strict=True)
                        ),
                        ssim=1.0 - 2.0 * float(dssims[region.faces.index(face)]),
                    )
                )
        landmarks = [None] * sum(len(r.faces) for r in regions)
        for region_index, region in enumerate(regions):
            offset = np.array([region.left, region.top], dtype=np.float32)
            for face in region.faces:
                landmarks[face] = local_points[region_index][face] + offset
        after = self.embed(output, landmarks)
        for outcome in outcomes:
            for recogniser in self.recognisers:
                name = recogniser.spec.name
                value = _raw_similarity(
                    recogniser.spec,
                    after[name][outcome.index : outcome.index + 1],
                    identity[name][outcome.index : outcome.index + 1],
                )
                outcome.scores[name] = float(value[0])
        outcomes.sort(key=lambda o: o.index)
        return CloakOutcome(output, outcomes, budget.steps)

    @staticmethod
    def _quantise(region: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
        """Round to the output's integer levels, as the saved file will be."""
        levels = 255.0 if dtype == np.uint8 else 65535.0 if dtype == np.uint16 else None
        region = region.clamp(0, 1)
        return torch.round(region * levels) / levels if levels else region
