"""Cloaking modes: how much each may change a face, and how hard it searches.

The perceptual budget is Fawkes' DSSIM, ``(1 - SSIM) / 2``, measured at full resolution over
each face's region; ``max_change`` caps any single pixel channel. ``mid`` keeps face-region SSIM
at or above 0.98 (DSSIM 0.01), the point where the change stays invisible at 100 % zoom on
typical photos.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class CloakBudget:
    """One mode's limits and search effort. Every field can be overridden by an expert."""

    name: str
    dssim: float  # largest allowed (1 - SSIM) / 2 over the face region
    max_change: float  # largest change of one channel of one pixel, in 0..1 units
    steps: int  # optimisation steps
    samples: int  # random transformations per face per step (expectation over them)
    learning_rate: float  # Adam step size, in 0..1 pixel units
    jpeg_probability: float  # share of transformation samples passed through a JPEG codec
    margin: float  # how far past each model's threshold the objective keeps pushing
    extra_steps: int  # at most this many more steps for faces still weak after ``steps``
    # Largest (1 - SSIM) / 2 over the whole region the change may touch (face, hair, and the
    # background re-detection can bring into a chip); None: the face's own limit. A tighter one
    # keeps a photo the face fills (a profile picture) closer to its original as a whole, at a
    # measured cost in protection (docs/evaluation.md), so no mode sets one.
    region_dssim: float | None = None
    # Largest (1 - SSIM) / 2 over the whole photo; None: no limit. Each region's own limit is
    # tightened to its share, so it binds only where faces fill the photo (a profile picture:
    # SSIM 0.99 at 0.005, at no measured cost in protection on LFW's crops or on portraits),
    # and there it cuts the faces too.
    photo_dssim: float | None = None
    # The photo limit binds only in photos of at most this many faces: LFW's crops (1-3 faces:
    # the subject and neighbours cut by the frame) lost no protection to it, but in a collage
    # of 24 faces the same cut left SFace matching 8 of them (docs/evaluation.md). Where many
    # faces fill a photo, whole-photo SSIM 0.99 can only be had from the faces' own budgets.
    photo_faces: int = 3

    def dssim_limits(self, faces: int, coverage: float = 0.0, photo_faces: int = 1) -> list[float]:
        """The DSSIM limit of each box a region budgets: its faces', then the whole region's.

        ``coverage`` is the share of the photo that all its regions cover together; outside
        them SSIM is 1, so a region DSSIM of ``photo_dssim / coverage`` in every region keeps
        the photo's DSSIM within ``photo_dssim``. ``photo_faces`` is how many faces the whole
        photo has (the limit applies to photos of at most ``self.photo_faces``).
        """
        region = self.dssim if self.region_dssim is None else self.region_dssim
        binds = self.photo_dssim is not None and photo_faces <= self.photo_faces
        if binds and coverage > 0.0:
            region = min(region, self.photo_dssim / coverage)
        return [self.dssim] * faces + [region]

    def with_overrides(self, **overrides: float | int) -> CloakBudget:
        """A copy with expert overrides; unknown names are an error, not silently ignored."""
        known = {f.name for f in fields(self)} - {"name"}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown budget setting(s): {', '.join(sorted(unknown))}")
        return replace(self, name=f"{self.name}+custom" if overrides else self.name, **overrides)


# ``low`` and ``mid`` keep a photo of up to three faces at whole-photo SSIM 0.99 or more; in
# ``high`` the faces alone take more than that.
MODES: dict[str, CloakBudget] = {
    "low": CloakBudget("low", 0.006, 8 / 255, 15, 2, 3.0 / 255, 0.7, 0.5, 20, photo_dssim=0.005),
    "mid": CloakBudget("mid", 0.010, 12 / 255, 20, 2, 3.0 / 255, 0.7, 0.7, 40, photo_dssim=0.005),
    # ``high``'s margin (2.0 threshold units: SFace cosine -0.91, dlib distance 1.8) is one no
    # face reaches, so every face keeps pushing for all 40 steps (extra steps would then run
    # for every face: 60 more took 2.6x the time for +0.00-0.09): against FaceNet, a network no
    # cloak is made with, the tracker's protection rose from 0.77 / 0.65 to 0.83 / 0.67 for
    # 5.4 s per face instead of 3.9 (docs/evaluation.md). In ``mid`` the same margin moved
    # nothing: its budget binds.
    "high": CloakBudget("high", 0.017, 16 / 255, 40, 2, 3.0 / 255, 0.7, 2.0, 0),
}


def budget_for(mode: str) -> CloakBudget:
    """The budget of a named mode, with a clear error listing the modes."""
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})") from None
