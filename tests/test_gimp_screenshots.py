"""Screenshots for the user guide, taken from the real GIMP 3 GUI under Xvfb (docs/img/).

Opening the dialog through the keyboard also proves the entry sits in Filters > Privacy and
opens GIMP 3's procedure dialog. Skipped LOUDLY without GIMP 3, Xvfb, xdotool or ImageMagick.
"""

from __future__ import annotations

import warnings

import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT, shared_data
from tests.gimp import harness, screenshots


def test_menu_entry_and_dialog_screenshots(tmp_path):
    missing = screenshots.missing_tools()
    reason = harness.gimp3_missing() if harness.gimp3_command() is None else None
    if reason is None and missing:
        reason = f"SKIPPED: {', '.join(missing)} missing; run .ci/setup.d/gimp.sh as root"
    if reason:
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    photo = shared_data("photos", "dlib-examples-faces", "2008_001322.jpg")
    box = harness.Sandbox.create(("3",))
    try:
        menu, dialog = screenshots.take(box, photo, PROJECT_ROOT / "docs" / "img")
    finally:
        box.close()
    with Image.open(menu) as picture:
        assert picture.width >= 640 and picture.height >= 400
        assert len(picture.convert("L").getcolors(256) or []) > 50  # GIMP drawn, not blank
    with Image.open(dialog) as picture:
        assert 200 <= picture.width <= 1000 and 100 <= picture.height <= 800
