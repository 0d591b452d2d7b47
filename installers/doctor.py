"""``install.sh --check``: is every part of facecloak in place and working?

Each line names one check, says OK or FAIL, and on failure says what to do. Exit code 0 only
when every check that applies passed.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

FIX_INSTALL = "run: installers/install.sh"


def _config_home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(base) if os.path.isabs(base) else Path.home() / ".config"


def _python_ok(python: Path, code: str, timeout: int = 300) -> tuple[bool, str]:
    if not python.exists():
        return False, f"no engine environment at {python.parent.parent}"
    try:
        result = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    last = (result.stderr.strip().splitlines() or [""])[-1]
    return result.returncode == 0, result.stdout.strip() or last


def check_engine(python: Path, engine: Path) -> tuple[bool | None, str, str]:
    ok, detail = _python_ok(python, "import facecloak; print(facecloak.__version__)")
    return ok, f"engine importable ({detail})", FIX_INSTALL


def check_models(python: Path, engine: Path) -> tuple[bool | None, str, str]:
    code = (
        "from facecloak.engine import Engine; e = Engine(); "
        "print(', '.join(r.spec.name for r in e.cloaker.recognisers))"
    )
    ok, detail = _python_ok(python, code)
    return ok, f"models load ({detail})", f"reinstall the engine: {FIX_INSTALL}"


def check_server(python: Path, engine: Path) -> tuple[bool | None, str, str]:
    client = engine / "bin" / "facecloak-client"
    if not client.exists():
        return False, "server starts (no facecloak-client)", FIX_INSTALL
    result = subprocess.run(
        [str(client), "start"], capture_output=True, text=True, timeout=120, check=False
    )
    detail = (result.stdout.strip() or result.stderr.strip()).splitlines()
    return (
        result.returncode == 0,
        f"server starts ({detail[-1] if detail else 'no output'})",
        "see the server log under ~/.local/state/facecloak/",
    )


def check_exiftool(python: Path, engine: Path) -> tuple[bool | None, str, str]:
    found = shutil.which("exiftool")
    return (
        found is not None,
        f"exiftool present ({found or 'missing'})",
        "install it: sudo apt install libimage-exiftool-perl (scrubbing falls back to "
        "facecloak's own filters without it)",
    )


def check_gimp(python: Path, engine: Path) -> tuple[bool | None, str, str]:
    manifest = _config_home() / "facecloak" / "gimp-install.json"
    if not manifest.exists():
        return None, "GIMP plug-in not installed", "to add it: installers/install.sh"
    recorded = json.loads(manifest.read_text())
    files = recorded.get("files") or []
    conf = configparser.ConfigParser()
    conf.read(_config_home() / "facecloak" / "bridge.conf")
    engine_python = conf.get("engine", "python", fallback="")
    missing = [f for f in files if not Path(f).exists()]
    ok = bool(files) and not missing and Path(engine_python) == python
    versions = ", ".join(recorded.get("gimp") or []) or "?"
    present = len(files) - len(missing)
    detail = f"GIMP {versions}, {present}/{len(files)} files; engine {engine_python or '?'}"
    return ok, f"GIMP plug-in ({detail})", FIX_INSTALL


def check_darktable(python: Path, engine: Path) -> tuple[bool | None, str, str]:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    folder = Path(base) / "darktable" / "lua" / "facecloak"
    conf = folder / "engine.conf"
    if not conf.exists():
        return None, "darktable script not installed", "to add it: installers/install.sh"
    text = conf.read_text()
    luarc = folder.parent.parent / "luarc"
    required = luarc.exists() and "facecloak/facecloak" in luarc.read_text()
    ok = str(engine / "bin" / "facecloak-client") in text and required
    return ok, f"darktable script ({folder}; luarc require line: {required})", FIX_INSTALL


CHECKS: tuple[Callable[[Path, Path], tuple[bool | None, str, str]], ...] = (
    check_engine, check_models, check_server, check_exiftool, check_gimp, check_darktable,
)  # fmt: skip


def run_checks(python: Path, engine: Path) -> int:
    """Print one line per check; non-zero when any applicable check failed."""
    failed = 0
    for check in CHECKS:
        ok, what, fix = check(python, engine)
        if ok is None:
            print(f"  --   {what}: {fix}")
        elif ok:
            print(f"  OK   {what}")
        else:
            failed += 1
            print(f"  FAIL {what}: {fix}")
    print("all good" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0
