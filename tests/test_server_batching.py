"""Requests queued while others are cloaked join them: one real server, concurrent clients.

Each photo must come out as it would alone (the command line with the same seed), a cancelled
one must not disturb the others, and ``--batch-photos 1`` must run them one after another.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from facecloak.cli import main as facecloak_main
from facecloak.imageio import load_image
from facecloak_bridge import Cancelled, Client
from PIL import Image

from tests.conftest import assert_same_cloak
from tests.test_server_support import start_server, stop_server

# Enough steps that the requests overlap; plumbing, not protection.
OPTIONS = {"steps": 10, "samples": 1, "extra_steps": 0}
ARGS = ["--mode", "low", "--steps", "10", "--samples", "1", "--extra-steps", "0"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Three different one-face photos that a registry package ships (scikit-image)."""
    folder = tmp_path_factory.mktemp("photos")
    astronaut = skimage.data.astronaut()
    variants = [astronaut, astronaut[20:470, ::-1], astronaut[10:500, 15:]]
    paths = []
    for index, pixels in enumerate(variants):
        path = folder / f"face{index}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)
        paths.append(path)
    return paths


def _cloak_together(server, photos, out: Path, seeds, cancel_index: int | None = None):
    """Send one request per photo at once; record how many ran at the same time."""
    results: dict[int, object] = {}
    most_running = 0

    def send(index: int) -> None:
        client = Client(server.settings, autostart=False)
        flag = threading.Event()
        try:
            results[index] = client.cloak_file(
                str(photos[index]), str(out / f"{index}.png"), mode="low", seed=seeds[index],
                options=OPTIONS,
                progress=(lambda done, _total: flag.set() if done >= 2 else None)
                if index == cancel_index else None,
                cancel=flag.is_set if index == cancel_index else None,
            )  # fmt: skip
        except Cancelled as error:
            results[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(photos))]
    for thread in threads:
        thread.start()
    watcher = Client(server.settings, autostart=False)
    while any(thread.is_alive() for thread in threads):
        most_running = max(most_running, watcher.health()["running"])
        time.sleep(0.05)
    return results, most_running


def _close_to_cli(photo: Path, cloaked: Path, seed: int, tmp: Path) -> None:
    alone = tmp / f"alone-{seed}.png"
    assert facecloak_main(["cloak", str(photo), "-o", str(alone), "--seed", str(seed), *ARGS]) == 0
    assert_same_cloak(
        load_image(alone).pixels, load_image(cloaked).pixels, load_image(photo).pixels
    )


def test_concurrent_requests_share_steps_and_match_the_command_line(photos, tmp_path):
    server = start_server(extra=("--batch-photos", "3"))
    try:
        results, most_running = _cloak_together(server, photos, tmp_path, seeds=(1, 2, 3))
    finally:
        stop_server(server)
    assert most_running >= 2, "queued requests should have joined the running one"
    for index in range(len(photos)):
        report = results[index]
        assert report["ok"] and report["faces_cloaked"] == 1, report
    for index in (0, 1):
        _close_to_cli(photos[index], tmp_path / f"{index}.png", index + 1, tmp_path)


def test_a_cancelled_request_leaves_the_batch_running(photos, tmp_path):
    server = start_server(extra=("--batch-photos", "3"))
    try:
        results, most_running = _cloak_together(
            server, photos, tmp_path, seeds=(4, 5, 6), cancel_index=1
        )
    finally:
        stop_server(server)
    assert isinstance(results[1], Cancelled)
    assert not (tmp_path / "1.png").exists(), "a cancelled job writes nothing"
    for index in (0, 2):
        assert results[index]["ok"] and results[index]["faces_cloaked"] == 1
    assert most_running >= 2


def test_batch_photos_one_runs_requests_one_after_another(photos, tmp_path):
    server = start_server(extra=("--batch-photos", "1"))
    try:
        results, most_running = _cloak_together(server, photos[:2], tmp_path, seeds=(7, 8))
    finally:
        stop_server(server)
    assert most_running == 1
    assert all(results[i]["ok"] for i in (0, 1))
