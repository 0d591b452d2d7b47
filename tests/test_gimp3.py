"""The GIMP 3 plug-in in the real GIMP 3 (headless): cloak, precisions, selection, errors, export.

One GIMP process runs all the cloak cases against one warm server (cheap budget: plumbing, not
protection). Skipped LOUDLY when GIMP 3 is not installed (CI installs it: .ci/setup.d/gimp.sh).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_data
from tests.gimp import checks, harness

PHOTO = ("photos", "dlib-examples-faces", "2008_001322.jpg")  # a group photo, 500x375
EXIF_PHOTO = ("photos", "face_recognition-examples", "obama.jpg")  # Canon EXIF, XMP, thumbnail


def _require_gimp3() -> None:
    if harness.gimp3_command() is None:
        message = harness.gimp3_missing()
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)


@pytest.fixture(scope="module")
def box():
    _require_gimp3()
    sandbox = harness.Sandbox.create(("3",))
    sandbox.start_server()
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def run(box):
    """All cloak cases in one GIMP 3 run; results by case name, plus GIMP's output."""
    photo, exif_photo = str(shared_data(*PHOTO)), str(shared_data(*EXIF_PHOTO))
    cheap = harness.CHEAP
    cases = [
        {"name": "rgb8", "input": photo, "procedure": "plug-in-facecloak", "args": cheap,
         "alpha": True, "offset": [40, 30], "export": str(box.work / "rgb8.png")},
        {"name": "float-linear", "input": photo, "procedure": "plug-in-facecloak",
         "args": cheap, "precision": "FLOAT_LINEAR"},
        {"name": "u16-selection", "input": photo, "procedure": "plug-in-facecloak",
         "args": cheap, "precision": "U16_NON_LINEAR", "select": [0, 0, 250, 375]},
        {"name": "export", "input": exif_photo, "procedure": "plug-in-facecloak-export",
         "args": {"file": str(box.work / "exported.jpg")}},
    ]  # fmt: skip
    results, output = box.gimp3({"cases": cases})
    return {r["name"]: r for r in results}, output


def _layers(result: dict) -> tuple[np.ndarray, np.ndarray]:
    assert "crash" not in result, result.get("crash")
    size = (result["width"], result["height"])
    return checks.raw_layer(result["before"], *size), checks.raw_layer(result["after"], *size)


def test_cloaks_faces_only_keeps_size_alpha_and_offset_and_logs_the_request(box, run):
    results, output = run
    result = results["rgb8"]
    assert result["status"] == "success", (result, output[-3000:])
    before, after = _layers(result)
    assert result["alpha"] and result["offset"] == [40, 30]
    checks.assert_cloaked_in_faces_only(before, after, checks.face_boxes(output, run=0))
    assert after[:24, :24, 3].max() == 0.0  # the transparent corner is still transparent
    exported = Image.open(box.work / "rgb8.png")
    assert exported.size == (540, 405) and exported.mode == "RGBA"
    assert "cloak_pixels started" in box.log_text() and "cloak_pixels done" in box.log_text()


def test_float_linear_image_changes_only_in_faces(run):
    results, output = run
    result = results["float-linear"]
    assert result["status"] == "success" and result["precision"] == "float-linear", result
    before, after = _layers(result)
    boxes = checks.face_boxes(output, run=1)  # the second cloak of the run
    checks.assert_cloaked_in_faces_only(before, after, boxes, tolerance=1e-5)


def test_selection_limits_cloaking_and_stays(run):
    results, _ = run
    result = results["u16-selection"]
    assert result["status"] == "success" and result["precision"] == "u16-non-linear", result
    before, after = _layers(result)
    changed = np.any(before != after, axis=2)
    assert changed[:, :250].any(), "nothing cloaked inside the selection"
    assert not changed[:, 250:].any(), "pixels changed outside the selection"
    assert not result["selection_empty"]


def test_export_cloaked_copy_scrubs_metadata(box, run):
    results, output = run
    assert results["export"]["status"] == "success", (results["export"], output[-3000:])
    exported = box.work / "exported.jpg"
    with Image.open(exported) as image:
        exif = image.getexif()
        assert image.size == Image.open(shared_data(*EXIF_PHOTO)).size
        assert 0x010F not in exif and 0x0110 not in exif, dict(exif)  # Make, Model
        assert "xmp" not in image.info and "XML:com.adobe.xmp" not in image.info
    assert not [p for p in box.work.iterdir() if p.name.startswith(".facecloak-export")]


def test_engine_unavailable_leaves_the_image_untouched_with_a_message(box, tmp_path):
    photo = str(shared_data(*PHOTO))
    cases = [{"name": "no-engine", "input": photo, "procedure": "plug-in-facecloak",
              "args": harness.CHEAP}]  # fmt: skip
    other = harness.Sandbox.create(("3",))  # no server there, and no engine to start one
    try:
        results, output = other.gimp3(
            {"cases": cases}, extra_env={"FACECLOAK_ENGINE_PYTHON": "/nonexistent/python"}
        )
        before, after = _layers(results[0])
    finally:
        other.close()
    result = results[0]
    assert result["status"] == "execution-error", result
    assert "engine" in result["error"] and "install" in result["error"], result["error"]
    assert "image was not changed" in output
    assert np.array_equal(before, after)


def _plugin_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"plug-ins/facecloak-gimp/facecloak-gimp.py" in command:
                found.append(int(entry.name))
    return found


def test_cancel_in_gimp_kills_the_plug_in_and_the_server_cancels_the_job(box):
    """GIMP cancels a plug-in by killing it (gimp_plug_in_close): the job must stop too."""
    photo = str(shared_data(*PHOTO))
    cases = [{"name": "cancelled", "input": photo, "procedure": "plug-in-facecloak",
              "args": {"mode": "high"}}]  # fmt: skip
    jobs_before = box.log_text().count("cloak_pixels started")
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(run=box.gimp3({"cases": cases})))
    thread.start()
    deadline = time.monotonic() + 120
    while box.log_text().count("cloak_pixels started") == jobs_before:
        assert time.monotonic() < deadline and thread.is_alive(), "the job never started"
        time.sleep(0.2)
    started = [line for line in box.log_text().splitlines() if "cloak_pixels started" in line]
    job = started[-1].split()[-3]  # "... [worker-engine] j7 cloak_pixels started"
    pids = _plugin_pids()
    assert pids, "the plug-in process was not found"
    for pid in pids:  # what GIMP's Cancel button does to the plug-in
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    thread.join(120)
    while f"{job} cloak_pixels cancelled" not in box.log_text():  # at the optimiser's next step
        assert time.monotonic() - killed < 60, box.log_text()[-1000:]
        time.sleep(0.2)
    assert f"{job} cloak_pixels done" not in box.log_text()
    result = outcome["run"][0][0]
    assert result["status"] != "success"
    before, after = _layers(result)
    assert np.array_equal(before, after)
