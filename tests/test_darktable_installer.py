"""installers/darktable.py: installs under <configdir>/lua, one require line in luarc, records
the engine, uninstalls exactly what it created; idempotent; --dry-run changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

INSTALLER = PROJECT_ROOT / "installers" / "darktable.py"
CLIENT = PROJECT_ROOT / "bridges" / "facecloak-client"
REQUIRE = 'require "facecloak/facecloak"'


def run(*args: str, configdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(INSTALLER), *args, "--configdir", str(configdir)],
        capture_output=True, text=True,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
    }


def test_install_twice_then_uninstall_leaves_the_user_config_as_it_was(tmp_path):
    configdir = tmp_path / "darktable"
    (configdir / "lua" / "contrib").mkdir(parents=True)
    (configdir / "lua" / "contrib" / "mine.lua").write_text("-- the user's script\n")
    (configdir / "luarc").write_text('require "tools/script_manager"')  # no final newline
    before = snapshot(configdir)

    for _ in range(2):
        result = run("install", "--engine", str(CLIENT), configdir=configdir)
        assert result.returncode == 0, result.stderr
    luarc = (configdir / "luarc").read_text()
    assert luarc.splitlines() == ['require "tools/script_manager"', REQUIRE]
    installed = configdir / "lua" / "facecloak"
    assert (installed / "facecloak.lua").is_file()
    assert (installed / "lib" / "storage.lua").is_file()
    assert f"client = {CLIENT}" in (installed / "engine.conf").read_text()
    assert "engine_python" not in (installed / "engine.conf").read_text()

    result = run("uninstall", configdir=configdir)
    assert result.returncode == 0, result.stderr
    assert snapshot(configdir) == before
    assert run("uninstall", configdir=configdir).returncode == 0  # again: nothing to do


def test_dry_run_changes_nothing_and_says_what_it_would_do(tmp_path):
    configdir = tmp_path / "darktable"
    result = run("install", "--dry-run", "--engine", str(CLIENT), configdir=configdir)
    assert result.returncode == 0, result.stderr
    assert "would write" in result.stdout and REQUIRE in result.stdout
    assert not configdir.exists()

    run("install", "--engine", str(CLIENT), configdir=configdir)
    installed = snapshot(configdir)
    result = run("uninstall", "--dry-run", configdir=configdir)
    assert "would remove" in result.stdout
    assert snapshot(configdir) == installed


def test_an_engine_python_is_recorded_with_its_client(tmp_path):
    configdir = tmp_path / "darktable"
    python = Path(sys.executable)
    result = run("install", "--engine", str(python), configdir=configdir)
    assert result.returncode == 0, result.stderr
    conf = (configdir / "lua" / "facecloak" / "engine.conf").read_text()
    assert f"engine_python = {Path(sys.executable).absolute()}" in conf
    assert "client = " in conf
    run("uninstall", configdir=configdir)
    assert not configdir.joinpath("lua").exists()
    assert not configdir.joinpath("luarc").exists()  # it created luarc, so it removes it


@pytest.mark.parametrize("engine", ["/nonexistent/facecloak-client", "__file__"])
def test_a_missing_or_non_executable_engine_is_refused(tmp_path, engine):
    engine = str(INSTALLER.with_name("README-none")) if engine == "__file__" else engine
    result = run("install", "--engine", engine, configdir=tmp_path / "darktable")
    assert result.returncode != 0
    assert "not an executable file" in result.stderr
    assert not (tmp_path / "darktable").exists()


def test_a_foreign_file_in_the_way_is_not_overwritten(tmp_path):
    configdir = tmp_path / "darktable"
    foreign = configdir / "lua" / "facecloak" / "facecloak.lua"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("-- someone else's facecloak.lua\n")
    result = run("install", "--engine", str(CLIENT), configdir=configdir)
    assert result.returncode != 0
    assert "not installed by facecloak" in result.stderr
    assert foreign.read_text() == "-- someone else's facecloak.lua\n"
