#!/usr/bin/env python3
"""Install or remove facecloak's GIMP plug-in (GIMP 3 and GIMP 2.10) for the current user.

    python3 installers/gimp.py install [--dry-run] [--engine-python PATH] [--gimp 3 --gimp 2.10]
    python3 installers/gimp.py uninstall [--dry-run]

Copies the plug-in, the shared ``facecloak_gimp`` package and the bridge client into each GIMP
profile's ``plug-ins/facecloak-gimp/``, records the engine's Python in the bridge's settings,
and writes a manifest of everything it created, so that uninstalling removes exactly that.
Standard library only; running it again replaces the previous installation.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "facecloak-gimp"
VERSIONS = ("3", "2.10")
SOURCES = {  # plug-in file per GIMP version, inside the checkout
    "3": os.path.join(REPO, "plugins", "gimp", "gimp3", PLUGIN, PLUGIN + ".py"),
    "2.10": os.path.join(REPO, "plugins", "gimp", "gimp2", PLUGIN, PLUGIN + ".py"),
}
PACKAGES = {  # packages copied beside the plug-in file
    "facecloak_gimp": os.path.join(REPO, "plugins", "gimp", "facecloak_gimp"),
    "facecloak_bridge": os.path.join(REPO, "bridges", "facecloak_bridge"),
}
PROFILE = {"3": ("GIMP3_DIRECTORY", "3.0"), "2.10": ("GIMP2_DIRECTORY", "2.10")}
PROGRAMS = {
    "3": ("gimp-3.0", "gimp-console-3.0", "gimp3"),
    "2.10": ("gimp-2.10", "gimp-console-2.10"),
}


def config_home() -> str:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    return base if os.path.isabs(base) else os.path.join(os.path.expanduser("~"), ".config")


def profile_dir(version: str) -> str:
    """GIMP's per-user folder on Linux (macOS and Windows: see installers/README.md)."""
    variable, folder = PROFILE[version]
    if os.environ.get(variable):
        return os.path.expanduser(os.environ[variable])
    if sys.platform == "darwin":
        support = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
        return os.path.join(support, "GIMP", folder)
    if os.name == "nt":
        return os.path.join(os.environ.get("APPDATA", os.path.expanduser("~")), "GIMP", folder)
    return os.path.join(config_home(), "GIMP", folder)


def bridge_conf() -> str:
    return os.path.join(config_home(), "facecloak", "bridge.conf")


def manifest_path() -> str:
    return os.path.join(config_home(), "facecloak", "gimp-install.json")


def detect_versions() -> list[str]:
    """GIMP versions with a profile folder or a program on PATH."""
    found = []
    for version in VERSIONS:
        programs = PROGRAMS[version]
        if os.path.isdir(profile_dir(version)) or any(shutil.which(p) for p in programs):
            found.append(version)
    return found


def default_engine_python() -> str | None:
    """The checkout's .venv Python if it has the engine, else this Python if it has it."""
    venv = os.path.join(REPO, ".venv", "bin", "python")
    for candidate in (venv, sys.executable):
        if candidate and has_engine(candidate):
            return candidate
    return None


def has_engine(python: str) -> bool:
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return False
    try:
        done = subprocess.run(
            [python, "-c", "import facecloak"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Actions:
    """Performs (or, with ``dry_run``, prints) file operations and remembers what it made."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.files: list[str] = []
        self.dirs: list[str] = []

    def say(self, line: str) -> None:
        print(("would " if self.dry_run else "") + line)

    def mkdir(self, path: str) -> None:
        if os.path.isdir(path):
            return
        self.mkdir(os.path.dirname(path))
        self.say(f"create folder {path}")
        if not self.dry_run:
            os.mkdir(path, 0o755)
        self.dirs.append(path)

    def copy(self, source: str, target: str, mode: int) -> None:
        self.mkdir(os.path.dirname(target))
        self.say(f"install {target} (mode {mode:o})")
        if not self.dry_run:
            shutil.copyfile(source, target)
            os.chmod(target, mode)
        self.files.append(target)

    def remove(self, path: str) -> None:
        if os.path.isfile(path) or os.path.islink(path):
            self.say(f"remove {path}")
            if not self.dry_run:
                os.remove(path)

    def rmdir(self, path: str) -> None:
        if os.path.isdir(path) and not os.listdir(path):
            self.say(f"remove folder {path}")
            if not self.dry_run:
                os.rmdir(path)


def install_plugin(actions: Actions, version: str) -> str:
    target = os.path.join(profile_dir(version), "plug-ins", PLUGIN)
    actions.copy(SOURCES[version], os.path.join(target, PLUGIN + ".py"), 0o755)
    for package, source in PACKAGES.items():
        for name in sorted(os.listdir(source)):
            if name.endswith(".py"):
                actions.copy(os.path.join(source, name), os.path.join(target, package, name), 0o644)
    return target


def record_engine(actions: Actions, python: str) -> dict[str, object]:
    """Set ``[engine] python`` in bridge.conf; returns what uninstall needs to undo it."""
    path = bridge_conf()
    parser = configparser.ConfigParser()
    existed = os.path.isfile(path)
    if existed:
        parser.read(path, encoding="utf-8")
    previous = parser.get("engine", "python", fallback=None)
    if not parser.has_section("engine"):
        parser.add_section("engine")
    parser.set("engine", "python", python)
    actions.mkdir(os.path.dirname(path))
    actions.say(f"set [engine] python = {python} in {path}")
    if not actions.dry_run:
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        os.chmod(path, 0o600)
    return {"path": path, "created": not existed, "previous_python": previous, "python": python}


def uninstall(actions: Actions) -> bool:
    path = manifest_path()
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        print(f"nothing to uninstall: no manifest at {path}")
        return False
    for file in manifest.get("files", []):
        actions.remove(file)
    for folder in sorted(manifest.get("dirs", []), key=len, reverse=True):
        actions.rmdir(folder)
    engine = manifest.get("engine")
    if engine:
        undo_engine(actions, engine)
    actions.remove(path)
    for folder in sorted(manifest.get("config_dirs", []), key=len, reverse=True):
        actions.rmdir(folder)
    return True


def undo_engine(actions: Actions, engine: dict[str, object]) -> None:
    path = str(engine["path"])
    parser = configparser.ConfigParser()
    if not parser.read(path, encoding="utf-8"):
        return
    if parser.get("engine", "python", fallback=None) != engine.get("python"):
        return  # changed since: not ours to undo
    if engine.get("previous_python"):
        parser.set("engine", "python", str(engine["previous_python"]))
    else:
        parser.remove_option("engine", "python")
        if not parser.items("engine"):
            parser.remove_section("engine")
    if engine.get("created") and not parser.sections():
        actions.remove(path)
        return
    actions.say(f"restore [engine] in {path}")
    if not actions.dry_run:
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)


def install(actions: Actions, versions: list[str], python: str | None) -> None:
    if os.path.isfile(manifest_path()):  # a previous installation: replace it cleanly
        uninstall(actions)
    targets = [install_plugin(actions, version) for version in versions]
    plugin_dirs, plugin_files = list(actions.dirs), list(actions.files)
    actions.dirs, actions.files = [], []
    engine = record_engine(actions, python) if python else None
    config_dirs = list(actions.dirs)
    actions.mkdir(os.path.dirname(manifest_path()))
    config_dirs += actions.dirs
    manifest = {
        "version": 1,
        "gimp": versions,
        "files": plugin_files,
        "dirs": plugin_dirs,
        "engine": engine,
        "config_dirs": config_dirs,
    }
    actions.say(f"write manifest {manifest_path()}")
    if not actions.dry_run:
        with open(manifest_path(), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1)
    for index, target in enumerate(targets):
        print(f"GIMP {versions[index]}: plug-in in {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--dry-run", action="store_true", help="print what would be done")
    parser.add_argument("--engine-python", help="the Python that has facecloak (default: found)")
    parser.add_argument(
        "--gimp", action="append", choices=VERSIONS,
        help="install for this GIMP version (repeatable; default: those found)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    actions = Actions(args.dry_run)
    if args.action == "uninstall":
        uninstall(actions)
        return 0
    versions = args.gimp or detect_versions()
    if not versions:
        print("no GIMP found (no profile folder, no gimp program); name one with --gimp 3")
        return 1
    python = os.path.abspath(args.engine_python) if args.engine_python else None
    python = python or default_engine_python()
    if python is None:
        print(
            "warning: no Python with the facecloak engine found; the plug-in will say how to "
            "install it (or rerun with --engine-python PATH)",
            file=sys.stderr,
        )
    elif not has_engine(python):
        print(f"warning: {python} cannot import facecloak (yet)", file=sys.stderr)
    install(actions, sorted(set(versions), key=VERSIONS.index), python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
