"""``facecloak batch --server``: the warm local server does the cloaking, through the bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from facecloak.imageio import load_image

from tests.conftest import shared_data

CHEAP = ["--mode", "low", "--steps", "1", "--samples", "1", "--extra-steps", "0"]


@pytest.mark.slow
def test_batch_through_a_private_server(tmp_path: Path) -> None:
    pytest.importorskip("facecloak_bridge.client")
    from facecloak_bridge.client import Client
    from facecloak_bridge.launcher import Settings

    env = dict(os.environ, FACECLOAK_ENGINE_PYTHON=sys.executable)
    for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        env[name] = str(tmp_path / name.lower())
        os.makedirs(env[name], mode=0o700)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("astronaut.png", "README.skimage-data.txt"):
        (src / name).write_bytes(shared_data("photos", "skimage", name).read_bytes())
    dest, report = tmp_path / "dest", tmp_path / "report.json"
    command = [sys.executable, "-m", "facecloak.cli", "batch", str(src), "-d", str(dest)]
    try:
        done = subprocess.run(
            [*command, *CHEAP, "--server", "--json", str(report)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        Client(Settings.from_environ(env), autostart=False).shutdown()
    assert done.returncode == 0, done.stderr
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["astronaut.png"]["status"] == "cloaked"
    assert files["README.skimage-data.txt"]["status"] == "skipped"
    cloaked = load_image(dest / "astronaut.png").pixels
    assert (cloaked != load_image(src / "astronaut.png").pixels).any()
    assert sorted(p.name for p in dest.iterdir()) == [
        ".facecloak-batch.jsonl",
        ".facecloak-batch.lock",
        "astronaut.png",
    ]
