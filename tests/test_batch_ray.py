"""The batch on a local Ray cluster (this machine only, 2 workers): results land in the same
destination and manifest, and a worker killed mid-task is retried without a second output."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from facecloak.batch.session import BatchRequest, execute
from facecloak.batch.settings import BatchSettings
from facecloak.batch.sources import Filters, walk_folder
from facecloak.budget import budget_for
from facecloak.imageio import load_image
from PIL import Image

from tests.conftest import shared_data


def _ray():
    try:
        import ray
    except ImportError:
        message = (
            "SKIPPED: Ray is not installed, so the --ray backend is not tested "
            "(pip install 'facecloak[ray]')"
        )
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return ray


def crashing_task(marker: Path):
    """The real task, but the worker dies once, right after writing astronaut's output."""

    def task(item, settings):
        from facecloak.batch.ray_backend import cloak_task

        result = cloak_task(item, settings)
        if item.out == "astronaut.png" and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return result

    return task


@pytest.mark.slow
def test_ray_local_cluster_with_a_lost_worker(tmp_path: Path) -> None:
    ray = _ray()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    for name in ("astronaut.png", "camera.png"):
        (src / name).write_bytes(shared_data("photos", "skimage", name).read_bytes())
    rng = np.random.default_rng(0)
    for number in range(4):
        pixels = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"noise{number}.jpg")
    (src / "readme.txt").write_text("not a photo")
    marker = tmp_path / "worker-died"
    settings = BatchSettings(budget_for("low").with_overrides(steps=1, samples=1, extra_steps=0))
    request = BatchRequest(
        list(walk_folder(src, Filters())), dest, settings, ray="local", ray_workers=2,
        ray_task=crashing_task(marker),
    )  # fmt: skip
    outcome = execute(request)
    assert marker.exists(), "the worker was never lost: the retry was not exercised"
    statuses = {Path(r.input).name: r.status for r in outcome.results}
    assert statuses["astronaut.png"] == "cloaked" and statuses["readme.txt"] == "skipped"
    assert all(statuses[f"noise{n}.jpg"] == "no-face" for n in range(4))
    assert not outcome.interrupted

    written = sorted(p.name for p in dest.iterdir())
    expected = ["astronaut.png", "camera.png", *(f"noise{n}.jpg" for n in range(4))]
    assert written == sorted([*expected, ".facecloak-batch.jsonl", ".facecloak-batch.lock"])
    records = [
        json.loads(line)
        for line in (dest / ".facecloak-batch.jsonl").read_text().split("\n")
        if line
    ]
    done = [r["out"] for r in records if r["event"] == "done"]
    assert sorted(done) == sorted([*expected, "readme.png"])  # once each (readme: skipped)
    cloaked = load_image(dest / "astronaut.png").pixels
    assert (cloaked != load_image(src / "astronaut.png").pixels).any()
