"""facecloak in the real darktable: darktable-cli batches through the export hook, the GUI's
"cloak faces" storage under Xvfb, and the engine-down cases. Every output must be cloaked
(faces changed, background unchanged against darktable's own uncloaked export) and carry no
identifying metadata; a failed image must leave no file at all.

The batch, engine-down and GUI export tests run twice: with the host's darktable (4.2 on
Debian 12) and with Debian 13's darktable 5.0 (from the Debian 13 root on a Debian 12 host,
see tests/darktable/harness.py; on a Debian 13 host the host's darktable is 5.0 itself)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, shared_data
from tests.darktable.harness import (
    CHEAP_OPTIONS,
    DEBIAN13,
    HOST,
    INSTALLS,
    Darktable,
    face_and_background_change,
    identifying_metadata,
    prepare_photos,
    require_install,
    require_programs,
)

SOURCES = ("obama.jpg", "obama2.jpg", "alex_lacamoire1.jpg")  # camera EXIF; 1, 1 and 2 faces
# the same, one renamed so that any unquoted shell use of a file name would break
PHOTOS = ("obama.jpg", "obama2.jpg", "alex lacamoire's $HOME;.jpg")
CHEAP = {"lua/facecloak/options": CHEAP_OPTIONS}
DOCS_IMG = PROJECT_ROOT / "docs" / "img"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of real photos given GPS, serial number, artist, creator and keywords."""
    require_programs("exiftool")
    source = shared_data("photos", "face_recognition-examples")
    folder = tmp_path_factory.mktemp("darktable-photos") / "roll"
    prepare_photos([source / name for name in SOURCES], folder, list(PHOTOS))
    return folder


@pytest.fixture
def host_darktable(photos):
    """The host's darktable-cli, for the tests that run on one darktable only."""
    require_install(HOST, "darktable-cli")


@pytest.fixture(scope="module", params=list(INSTALLS))
def install(request):
    """Each darktable the tests cover: the host's, and Debian 13's 5.0 (from the root)."""
    install = INSTALLS[request.param]
    if install is DEBIAN13 and HOST.missing("darktable-cli") is None and HOST.major >= 5:
        pytest.skip(f"the host's darktable is {HOST.version} already: 5.x is tested as 'host'")
    require_install(install, "darktable-cli")
    if install is DEBIAN13:
        assert install.major == 5, f"Debian 13 ships darktable 5.x, not {install.version_text!r}"
    print(f"{install.name} darktable: {install.version_text}")
    return install


@pytest.fixture(scope="module")
def baseline(photos, install, tmp_path_factory) -> Path:
    """darktable's own export with the hook switched off: uncloaked, metadata intact."""
    root = tmp_path_factory.mktemp(f"darktable-baseline-{install.name}")
    run = Darktable(root / "dt", install=install).cli(
        photos, str(root / "out" / "$(FILE_NAME).jpg"), {"lua/facecloak/hook": "FALSE"}
    )
    assert run.returncode == 0, run.stdout
    assert "facecloak: cloaked" not in run.stdout
    return root / "out"


@pytest.fixture(scope="module")
def server_home(tmp_path_factory):
    """One engine server for the tests that cloak: the models load once."""
    home = tmp_path_factory.mktemp("darktable-server")
    yield home
    Darktable(home / "stopper", server_home=home).stop_server()


@pytest.fixture(scope="module")
def detector():
    from facecloak.detect import FaceDetector

    return FaceDetector()


def assert_cloaked_and_clean(outputs: list[Path], baseline: Path, detector) -> None:
    for output in outputs:
        reference = baseline / f"{output.stem.removesuffix('-cloaked')}.jpg"
        assert identifying_metadata(reference), "the test photos should carry metadata"
        assert identifying_metadata(output) == [], output.name
        face, background = face_and_background_change(reference, output, detector)
        assert face > 0.3 and face > 5 * background, (output.name, face, background)
        assert background < 0.25, (output.name, background)
    folder = outputs[0].parent
    leftovers = [p.name for p in folder.iterdir() if p not in outputs]
    assert leftovers == [], f"unexpected files next to the outputs: {leftovers}"


def assert_no_work_folder(darktable_root: Path) -> None:
    """The script's private folder (logs, "done" files) goes once its jobs are answered."""
    left = [p.name for p in (darktable_root / "tmp").glob("facecloak-dt.*")]
    assert left == [], f"the script left its work folder in darktable's tmp: {left}"


def test_cli_batch_through_the_hook(install, photos, baseline, detector, server_home, tmp_path):
    darktable = Darktable(tmp_path / "dt", server_home=server_home, install=install)
    conf = {"lua/facecloak/hook": "TRUE", "lua/facecloak/hook_mode": "low", **CHEAP}
    run = darktable.cli(photos, str(tmp_path / "out" / "$(FILE_NAME).jpg"), conf)
    assert run.returncode == 0, run.stdout
    for name in PHOTOS:
        assert f"facecloak: cloaked {name}" in run.stdout, run.stdout
    outputs = sorted((tmp_path / "out").glob("*.jpg"))
    assert [p.name for p in outputs] == sorted(PHOTOS)
    assert_cloaked_and_clean(outputs, baseline, detector)
    assert_no_work_folder(tmp_path / "dt")


def test_cli_engine_down_exports_nothing(install, photos, tmp_path):
    darktable = Darktable(
        tmp_path / "dt", engine_python="/nonexistent/engine/python", install=install
    )
    run = darktable.cli(photos / PHOTOS[0], str(tmp_path / "out" / "$(FILE_NAME).jpg"),
                        {"lua/facecloak/hook": "TRUE", **CHEAP})  # fmt: skip
    assert f"facecloak: FAILED {PHOTOS[0]}" in run.stdout, run.stdout
    assert "/nonexistent/engine/python" in run.stdout  # the reason, not just "failed"
    assert run.returncode == 1  # darktable-cli itself would say 0
    assert_no_work_folder(tmp_path / "dt")
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_cli_unsupported_format_exports_nothing(host_darktable, photos, tmp_path):
    darktable = Darktable(tmp_path / "dt")
    run = darktable.cli(photos / PHOTOS[0], str(tmp_path / "out" / "$(FILE_NAME).pfm"),
                        {"lua/facecloak/hook": "TRUE", **CHEAP})  # fmt: skip
    assert f"facecloak: FAILED {PHOTOS[0]}" in run.stdout, run.stdout
    assert run.returncode == 1
    assert not (tmp_path / "out" / "obama.pfm").exists()


NAMING_CHECK = """
local naming = require "facecloak/lib/naming"
local util = require "facecloak/lib/util"
local image = { filename = "IMG_0001.CR2", path = "/photos/2024 trip", id = 7,
  duplicate_index = 1, exif_datetime_taken = "2024:05:06 07:08:09" }
local v = naming.variables(image, 3)
print("N1", naming.expand("$(FILE_FOLDER)/$(ROLL_NAME)/$(EXIF_YEAR)-$(SEQUENCE)-$(FILE_NAME)", v))
print("N2", naming.expand("$(NO_SUCH)", v))
print("N3", naming.target("/x/$(FILE_EXTENSION)", "a/b", v, "jpg", false, {}))
print("N4", util.quote("it's $HOME"), util.split_options("--steps 1 ; rm"))
"""


def test_naming_and_quoting_helpers_in_darktables_lua(host_darktable, photos, tmp_path):
    run = Darktable(tmp_path / "dt").cli(
        photos / PHOTOS[0], str(tmp_path / "out" / "$(FILE_NAME).jpg"),
        {"lua/facecloak/hook": "FALSE"}, luacmd=NAMING_CHECK,
    )  # fmt: skip
    lines = dict(line.split("\t", 1) for line in run.stdout.splitlines() if line[:2] in
                 ("N1", "N2", "N3", "N4"))  # fmt: skip
    assert lines["N1"] == "/photos/2024 trip/2024 trip/2024-0003-IMG_0001", run.stdout
    assert lines["N2"] == "nil\tNO_SUCH"
    assert lines["N3"] == "/x/CR2/a_b.jpg"
    assert lines["N4"] == "'it'\\''s $HOME'\tnil\t;"


GUI_CONF = {
    "plugins/lighttable/export/storage_name": "facecloak",
    "plugins/lighttable/export/format_name": "jpeg",
    "lua/facecloak/storage_mode": "low",
    "lua/facecloak/storage_name": "$(FILE_NAME)-cloaked",
    **CHEAP,
}


def test_gui_export_through_the_storage(install, photos, baseline, detector, server_home, tmp_path):
    require_install(install, "darktable", "xvfb-run")
    darktable = Darktable(tmp_path / "dt", server_home=server_home, install=install)
    shutil.rmtree(photos / "cloaked", ignore_errors=True)  # the other darktable's outputs
    conf = {**GUI_CONF, "lua/facecloak/hook": "TRUE"}  # the hook must leave these files alone
    shot = tmp_path / "shot.png"
    run = darktable.gui_export([photos / n for n in PHOTOS[1:]], conf, shot=shot)
    assert "gui_driver: export finished: 2 done, 0 failed" in run.stdout, run.stdout
    assert run.stdout.count("facecloak: cloaked") == 2, run.stdout  # once each, not twice
    outputs = sorted((photos / "cloaked").glob("*.jpg"))  # the default $(FILE_FOLDER)/cloaked
    assert [p.name for p in outputs] == sorted(f"{Path(n).stem}-cloaked.jpg" for n in PHOTOS[1:])
    assert_cloaked_and_clean(outputs, baseline, detector)
    check_screenshot(shot, save=install is HOST)  # the docs show the host's darktable
    assert not list((tmp_path / "dt" / "tmp").rglob("*.jpg")), "temporary exports left behind"
    assert_no_work_folder(tmp_path / "dt")


def check_screenshot(shot: Path, save: bool) -> None:
    """The export module with the storage selected; FACECLOAK_DOCS_SCREENSHOTS=1 saves it."""
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        assert image.size == (1600, 1000)
        panel = image.convert("L").crop((1275, 290, 1590, 825))
        assert ImageStat.Stat(panel).stddev[0] > 5, "the export module is not on screen"
        if save and os.environ.get("FACECLOAK_DOCS_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(exist_ok=True)
            image.convert("RGB").save(DOCS_IMG / "darktable-lighttable.png", optimize=True)
            panel_rgb = image.convert("RGB").crop((1275, 290, 1590, 825))
            panel_rgb.save(DOCS_IMG / "darktable-export-module.png", optimize=True)


def test_gui_engine_down_exports_nothing(host_darktable, photos, tmp_path):
    require_programs("darktable", "xvfb-run")
    darktable = Darktable(tmp_path / "dt", engine_python="/nonexistent/engine/python")
    conf = {**GUI_CONF, "lua/facecloak/storage_folder": str(tmp_path / "out")}
    run = darktable.gui_export([photos / PHOTOS[0]], conf)
    assert "gui_driver: export finished: 0 done, 1 failed" in run.stdout, run.stdout
    assert f"facecloak: FAILED {PHOTOS[0]}" in run.stdout
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert not list((tmp_path / "dt" / "tmp").rglob("*.jpg")), "an uncloaked export was left"
    assert_no_work_folder(tmp_path / "dt")


def test_stop_and_restart_as_script_manager_does(host_darktable, photos, server_home, tmp_path):
    """destroy() removes the hook (nothing cloaked); restart() brings it back, once."""
    darktable = Darktable(tmp_path / "dt", server_home=server_home)
    conf = {"lua/facecloak/hook": "TRUE", "lua/facecloak/hook_mode": "low", **CHEAP}
    load = 'local s = require "facecloak/facecloak"; s.destroy()'
    stopped = darktable.cli(photos / PHOTOS[0], str(tmp_path / "a" / "$(FILE_NAME).jpg"),
                            conf, luacmd=load)  # fmt: skip
    restarted = darktable.cli(photos / PHOTOS[0], str(tmp_path / "b" / "$(FILE_NAME).jpg"),
                              conf, luacmd=load + "; s.restart()")  # fmt: skip
    assert "facecloak:" not in stopped.stdout and (tmp_path / "a" / PHOTOS[0]).exists()
    assert restarted.stdout.count(f"facecloak: cloaked {PHOTOS[0]}") == 1, restarted.stdout
    assert identifying_metadata(tmp_path / "a" / PHOTOS[0])  # uncloaked: darktable's metadata
    assert identifying_metadata(tmp_path / "b" / PHOTOS[0]) == []


def test_driver_and_script_are_installed_copies(tmp_path):
    """The tests run the installed script, not the checkout's: both must be identical."""
    darktable = Darktable(tmp_path / "dt")
    installed = darktable.configdir / "lua" / "facecloak"
    for source in (PROJECT_ROOT / "plugins" / "darktable").rglob("*.lua"):
        relative = source.relative_to(PROJECT_ROOT / "plugins" / "darktable")
        assert (installed / relative).read_bytes() == source.read_bytes()
