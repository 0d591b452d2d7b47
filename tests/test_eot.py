"""Photo versions of a big region read windows around each chip: the same chips and gradients
as versions made whole, for every kind of version the transformations draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facecloak import eot
from facecloak.crops import CroppedRegion
from facecloak.eot import PhotoVersion
from facecloak.models import get
from facecloak.pixels import to_unit
from PIL import Image

from tests.conftest import shared_data

# The astronaut's landmarks (at 512 px), as in test_align.
ASTRONAUT_LANDMARKS = [[197.0, 110], [233, 108], [217, 132], [201, 152], [232, 151]]


@pytest.fixture(scope="module")
def big_region() -> torch.Tensor:
    """The astronaut at 1536 px: a region well over the size versions are made whole at."""
    photo = Image.open(shared_data("photos", "skimage", "astronaut.png")).convert("RGB")
    region = to_unit(np.asarray(photo.resize((1536, 1536), Image.LANCZOS))).contiguous()
    assert region.shape[-1] * region.shape[-2] > eot.WHOLE_REGION_LIMIT
    return region


def _chips_and_gradient(region, settings, matrices, size):
    source = CroppedRegion(region)
    chips = PhotoVersion(source, **settings).chips(matrices, size)
    weights = torch.linspace(-1, 1, chips.numel()).reshape(chips.shape)
    (chips * weights).sum().backward()
    return chips.detach(), source.gradient()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"quality": 80.0},  # too big to code whole: each chip is coded
        {"factor": 2, "quality": 90.0},  # a half-size copy, coded whole on its 8x8 grid
        {"factor": 5, "quality": 65.0},
        {"factor": 4, "pooled": False, "offset": 3},  # every 4th pixel from the 4th
        {"factor": 3, "pooled": False, "offset": 1, "quality": 70.0},
    ],
    ids=["full", "full-jpeg", "half-jpeg", "fifth-jpeg", "strided", "strided-jpeg"],
)
@pytest.mark.parametrize("model", ["sface", "dlib"])
def test_windows_give_the_whole_versions_chips_and_gradient(
    big_region, settings, model, monkeypatch
):
    spec = get(model)
    landmarks = torch.tensor([ASTRONAUT_LANDMARKS]) * 3.0 + 1.0
    jittered = eot.jittered_matrices(
        landmarks[0], torch.as_tensor(spec.template_array()), spec.input_size, 2,
        eot.Jitter(), torch.Generator().manual_seed(3),
    )  # fmt: skip
    windowed, windowed_grad = _chips_and_gradient(big_region, settings, jittered, spec.input_size)
    # What every version was before windows: the whole region, made once.
    monkeypatch.setattr(eot, "WHOLE_REGION_LIMIT", big_region.numel())
    whole, whole_grad = _chips_and_gradient(big_region, settings, jittered, spec.input_size)
    assert windowed.shape == whole.shape == (2, 3, spec.input_size, spec.input_size)
    # Float rounding differs (kornia normalises coordinates by the input's size) and a JPEG
    # round trip can turn a 1e-7 difference into a flipped coefficient, so the figures are
    # means: a window off by one pixel or one JPEG block gives 1e-2 and a gradient 100 % off.
    assert float((windowed - whole).abs().mean()) < 2e-5
    assert float((windowed - whole).abs().max()) < 1e-2
    scale = float(whole_grad.abs().mean())
    assert scale > 0
    assert float((windowed_grad - whole_grad).abs().mean()) < 5e-3 * scale


def test_cropped_region_sums_each_readers_gradient_as_autograd_would():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand((1, 3, 300, 200), generator=generator)
    reads = [(0, 300, 0, 200), (10, 50, 20, 90), (40, 120, 60, 200), (10, 50, 20, 90)]
    weights = [torch.rand((1, 3, b - t, r - lft), generator=generator) for t, b, lft, r in reads]

    cropped = CroppedRegion(pixels)
    loss = sum((cropped.crop(*read) ** 2 * w).sum() for read, w in zip(reads, weights, strict=True))
    loss.backward()

    leaf = pixels.clone().requires_grad_()
    reference = sum(
        (leaf[..., t:b, lft:r] ** 2 * w).sum()
        for (t, b, lft, r), w in zip(reads, weights, strict=True)
    )
    reference.backward()
    assert torch.allclose(cropped.gradient(), leaf.grad, atol=1e-6)


def test_alignments_vary_the_framing_within_the_jitter_ranges():
    """Zoom and shift of the jittered alignments fill their ranges and never leave them: a
    tracker's crop may be looser or tighter than the ensemble's own."""
    spec, jitter = get("sface"), eot.Jitter()
    landmarks = torch.tensor(ASTRONAUT_LANDMARKS, dtype=torch.float32)
    quiet = eot.Jitter(landmark_sigma=0.0, max_rotation_deg=0.0, max_log_scale=0.0, max_shift=0.0)
    template = torch.as_tensor(spec.template_array())
    nominal = eot.jittered_matrices(
        landmarks, template, spec.input_size, 1, quiet, torch.Generator().manual_seed(0)
    )[0]
    varied = eot.jittered_matrices(
        landmarks, template, spec.input_size, 400,
        eot.Jitter(landmark_sigma=0.0, max_rotation_deg=0.0), torch.Generator().manual_seed(1),
    )  # fmt: skip
    zoom = torch.log(varied[:, 0, 0] / nominal[0, 0])
    assert float(zoom.abs().max()) <= jitter.max_log_scale + 1e-5
    assert float(zoom.min()) < -0.9 * jitter.max_log_scale
    assert float(zoom.max()) > 0.9 * jitter.max_log_scale
    # Where the chip's centre lands, beyond what the zoom alone explains, is the shift.
    centre = torch.tensor([(spec.input_size - 1) / 2.0] * 2)
    source = torch.linalg.solve(nominal[:, :2], centre - nominal[:, 2])
    moved = (varied[:, :, :2] @ source) + varied[:, :, 2] - centre
    limit = jitter.max_shift * spec.input_size
    assert float(moved.abs().max()) <= limit + 1e-3
    assert float(moved.abs().max()) > 0.9 * limit
