"""installers/gimp.py: layout, permissions, engine record, dry run, idempotence, clean removal."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

INSTALLER = Path(__file__).resolve().parents[1] / "installers" / "gimp.py"


def _run(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env.pop("GIMP3_DIRECTORY", None)
    env.pop("GIMP2_DIRECTORY", None)
    done = subprocess.run(
        [sys.executable, str(INSTALLER), *args], env=env, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def test_install_lays_out_both_versions_and_uninstall_removes_exactly_that(tmp_path):
    config = tmp_path / "cfg"
    (config / "GIMP" / "3.0").mkdir(parents=True)
    (config / "GIMP" / "3.0" / "gimprc").write_text("# the user's own\n")
    before = _tree(config)
    out = _run(tmp_path, "install", "--gimp", "3", "--gimp", "2.10", "--engine-python", "/e/py")
    assert "GIMP 3: plug-in in" in out and "GIMP 2.10: plug-in in" in out
    for version in ("3.0", "2.10"):
        folder = config / "GIMP" / version / "plug-ins" / "facecloak-gimp"
        script = folder / "facecloak-gimp.py"
        assert script.stat().st_mode & 0o777 == 0o755
        assert (folder / "facecloak_gimp" / "flow.py").stat().st_mode & 0o777 == 0o644
        assert (folder / "facecloak_bridge" / "client.py").is_file()
        marker = "Gimp.PlugIn" if version == "3.0" else "gimp2api"
        assert marker in script.read_text()
    conf = configparser.ConfigParser()
    conf.read(config / "facecloak" / "bridge.conf")
    assert conf["engine"]["python"] == "/e/py"
    manifest = json.loads((config / "facecloak" / "gimp-install.json").read_text())
    assert manifest["gimp"] == ["3", "2.10"]

    again = _tree(config)
    _run(tmp_path, "install", "--gimp", "3", "--gimp", "2.10", "--engine-python", "/e/py")
    assert _tree(config) == again  # idempotent

    _run(tmp_path, "uninstall")
    assert _tree(config) == before  # the user's own file stays, everything else is gone
    assert "nothing to uninstall" in _run(tmp_path, "uninstall")


def test_dry_run_changes_nothing_and_says_what_it_would_do(tmp_path):
    out = _run(tmp_path, "install", "--dry-run", "--gimp", "3", "--engine-python", "/e/py")
    assert "would install" in out and "facecloak-gimp.py (mode 755)" in out
    assert "would set [engine] python = /e/py" in out
    assert not (tmp_path / "cfg").exists()


def test_an_existing_engine_setting_is_restored_on_uninstall(tmp_path):
    conf = tmp_path / "cfg" / "facecloak" / "bridge.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[engine]\npython = /old/python\nreply_timeout = 300\n")
    _run(tmp_path, "install", "--gimp", "2.10", "--engine-python", "/new/python")
    assert "/new/python" in conf.read_text() and "reply_timeout = 300" in conf.read_text()
    _run(tmp_path, "uninstall")
    parser = configparser.ConfigParser()
    parser.read(conf)
    assert parser["engine"]["python"] == "/old/python"
    assert parser["engine"]["reply_timeout"] == "300"
