"""The GIMP 2.10 plug-in (Python 3 + ctypes on libgimp) in the real GIMP 2.10, headless.

Script-Fu drives it: load a photo, export the layer, call the procedure inside ``catch``,
export again, and print a marker saying whether the call failed. Skipped LOUDLY when GIMP 2.10
is not installed (Debian 12 CI installs it; Debian 13 no longer packages it).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_data
from tests.gimp import checks, harness

PHOTO = ("photos", "dlib-examples-faces", "2008_001322.jpg")  # a group photo, 500x375
EXIF_PHOTO = ("photos", "face_recognition-examples", "obama.jpg")  # Canon EXIF, XMP, thumbnail
CHEAP = "0 1 0 2 1 0"  # mode low, selection only, seed 0, 2 steps, 1 sample, no extra steps


def _require_gimp2() -> None:
    message = harness.gimp2_missing()
    if message:
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)


def _case(name: str, photo: str, folder, prepare: str = "", call: str = "") -> str:
    """Script-Fu that exports the layer before and after ``call`` and reports its outcome."""
    before, after = folder / f"{name}-before.png", folder / f"{name}-after.png"
    return f"""(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "{photo}" "{photo}")))
                      (layer (car (gimp-image-get-active-layer image))))
      {prepare}
      (gimp-file-save RUN-NONINTERACTIVE image layer "{before}" "{before}")
      (gimp-message (if (catch #f {call} #t) "FACECLOAK-CASE {name} ok" "FACECLOAK-CASE {name} failed"))
      (gimp-file-save RUN-NONINTERACTIVE image layer "{after}" "{after}")
      (gimp-image-delete image))"""  # noqa: E501


def _outcome(output: str, name: str) -> str:
    found = re.findall(rf"FACECLOAK-CASE {name} (\w+)", output)
    assert found, f"case {name} did not run:\n{output[-3000:]}"
    return found[-1]


def _pair(folder, name: str) -> tuple[np.ndarray, np.ndarray]:
    def load(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0

    return load(folder / f"{name}-before.png"), load(folder / f"{name}-after.png")


@pytest.fixture(scope="module")
def box():
    _require_gimp2()
    sandbox = harness.Sandbox.create(("2.10",))
    sandbox.start_server()
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def run(box):
    photo, exif_photo = shared_data(*PHOTO), shared_data(*EXIF_PHOTO)
    work = box.work
    cloak = f"(plug-in-facecloak RUN-NONINTERACTIVE image layer {CHEAP})"
    alpha_and_offset = """(gimp-layer-add-alpha layer)
      (gimp-image-select-rectangle image CHANNEL-OP-REPLACE 0 0 24 24)
      (gimp-drawable-edit-clear layer) (gimp-selection-none image)
      (gimp-image-resize image 540 405 40 30)"""
    float_selection = """(gimp-image-convert-precision image PRECISION-FLOAT-LINEAR)
      (gimp-image-select-rectangle image CHANNEL-OP-REPLACE 0 0 250 375)"""
    exported = work / "exported.jpg"
    export = f'(plug-in-facecloak-export RUN-NONINTERACTIVE image layer "{exported}")'
    scheme = [
        _case("rgb8", photo, work, alpha_and_offset, cloak),
        _case("float-selection", photo, work, float_selection, cloak),
        _case("export", exif_photo, work, "", export),
    ]
    return box.gimp2(scheme)


def test_cloaks_faces_only_keeps_alpha_and_logs_the_request(box, run):
    assert _outcome(run, "rgb8") == "ok", run[-3000:]
    before, after = _pair(box.work, "rgb8")
    checks.assert_cloaked_in_faces_only(before, after, checks.face_boxes(run, run=0))
    assert after.shape == (375, 500, 4) and after[:24, :24, 3].max() == 0.0
    assert "cloak_pixels started" in box.log_text() and "cloak_pixels done" in box.log_text()


def test_float_image_with_selection_changes_only_faces_inside_it(box, run):
    assert _outcome(run, "float-selection") == "ok", run[-3000:]
    before, after = _pair(box.work, "float-selection")
    changed = np.any(np.abs(before - after) > 1.5 / 255, axis=2)
    assert changed[:, :250].sum() > 200, "nothing cloaked inside the selection"
    assert not np.any(before[:, 250:] != after[:, 250:]), "pixels changed outside the selection"
    boxes = [b for b in checks.face_boxes(run, run=1) if b[0] + b[2] <= 250]
    assert boxes and not changed[~checks.face_mask(changed.shape, boxes, grow=1.0)].any()


def test_export_cloaked_copy_scrubs_metadata(box, run):
    assert _outcome(run, "export") == "ok", run[-3000:]
    with Image.open(box.work / "exported.jpg") as image:
        exif = image.getexif()
        assert 0x010F not in exif and 0x0110 not in exif, dict(exif)  # Make, Model
        assert "xmp" not in image.info and "XML:com.adobe.xmp" not in image.info


def test_engine_unavailable_leaves_the_image_untouched_with_a_message():
    _require_gimp2()
    photo = shared_data(*PHOTO)
    other = harness.Sandbox.create(("2.10",))  # no server there, and no engine to start one
    try:
        cloak = f"(plug-in-facecloak RUN-NONINTERACTIVE image layer {CHEAP})"
        output = other.gimp2(
            [_case("no-engine", photo, other.work, "", cloak)],
            extra_env={"FACECLOAK_ENGINE_PYTHON": "/nonexistent/python"},
        )
        before, after = _pair(other.work, "no-engine")
    finally:
        other.close()
    assert _outcome(output, "no-engine") == "failed"
    assert "image was not changed" in output and "not installed" in output
    assert np.array_equal(before, after)
