#!/usr/bin/env python3
"""Install facecloak's darktable script into a darktable configuration folder, or remove it.

    python3 installers/darktable.py install [--engine PATH] [--configdir DIR] [--dry-run]
    python3 installers/darktable.py uninstall [--configdir DIR] [--dry-run]

install copies plugins/darktable/ to <configdir>/lua/facecloak/, writes the engine's location
to lua/facecloak/engine.conf, and adds ``require "facecloak/facecloak"`` to <configdir>/luarc
once. A manifest (lua/facecloak/.install-manifest.json) lists what it created, so uninstall
removes exactly that, and the luarc line, and nothing of the user's. Running either twice is
harmless. Standard library only: it runs with any Python 3.8+.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "plugins" / "darktable"
FOLDER = "facecloak"  # under <configdir>/lua: one folder, so script_manager sees one script
REQUIRE_LINE = 'require "facecloak/facecloak"'
MANIFEST = ".install-manifest.json"
ENGINE_CONF = "engine.conf"
DEFAULT_CLIENT = REPO / ".venv" / "bin" / "facecloak-client"


def default_configdir() -> Path:
    """darktable's default: $XDG_CONFIG_HOME/darktable, else ~/.config/darktable."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "darktable"


class Installer:
    """Plans and performs each change; with ``dry_run`` it only says what it would do."""

    def __init__(self, configdir: Path, dry_run: bool) -> None:
        self.configdir = configdir
        self.lua = configdir / "lua"
        self.target = self.lua / FOLDER
        self.luarc = configdir / "luarc"
        self.dry_run = dry_run

    def say(self, text: str) -> None:
        print(("would " if self.dry_run else "") + text)

    # ------------------------------------------------------------------ install

    def install(self, engine: str | None) -> int:
        client, python = resolve_engine(engine)
        manifest = self.read_manifest()
        manifest.setdefault("lua_dir_created", not self.lua.exists())
        created = set(manifest.get("files", []))
        conf = f"# written by installers/darktable.py\nclient = {client}\n"
        if python:
            conf += f"engine_python = {python}\n"
        files = {
            p.relative_to(SOURCE).as_posix(): p.read_bytes()
            for p in sorted(SOURCE.rglob("*.lua"))
            if p.is_file()
        }
        files[ENGINE_CONF] = conf.encode()
        for relative, data in files.items():  # refuse before changing anything
            path = self.target / relative
            if path.exists() and relative not in created and path.read_bytes() != data:
                raise SystemExit(f"error: {path} exists and was not installed by facecloak")
        for relative, data in files.items():
            self.write(relative, data, created)
        manifest["files"] = sorted(created)
        manifest["luarc_line"] = self.add_require(manifest.get("luarc_line", False))
        manifest["luarc_created"] = manifest.get("luarc_created") or self.luarc_created
        manifest["luarc_newline_added"] = manifest.get("luarc_newline_added") or self.newline_added
        self.save_manifest(manifest)
        print(f"darktable script {'would be ' if self.dry_run else ''}installed in {self.target}")
        print(f"engine: {client}" + (f" (engine Python {python})" if python else ""))
        return 0

    def write(self, relative: str, data: bytes, created: set[str]) -> None:
        path = self.target / relative
        if path.exists() and path.read_bytes() == data:
            created.add(relative)
            return
        self.say(f"write {path}")
        created.add(relative)
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def add_require(self, added_before: bool) -> bool:
        """Append the require line unless luarc already has it; True if facecloak added it."""
        self.luarc_created = self.newline_added = False
        text = self.luarc.read_text(encoding="utf-8") if self.luarc.exists() else ""
        if any(line.strip() == REQUIRE_LINE for line in text.splitlines()):
            return added_before
        self.say(f"add '{REQUIRE_LINE}' to {self.luarc}")
        self.luarc_created = not self.luarc.exists()
        if not self.dry_run:
            self.configdir.mkdir(parents=True, exist_ok=True)
            separator = "" if text == "" or text.endswith("\n") else "\n"
            self.newline_added = bool(separator)  # uninstall takes it away again
            self.luarc.write_text(text + separator + REQUIRE_LINE + "\n", encoding="utf-8")
        return True

    # ------------------------------------------------------------------ uninstall

    def uninstall(self) -> int:
        manifest = self.read_manifest()
        if not manifest:
            print(f"facecloak's darktable script is not installed in {self.configdir}")
            return 0
        for relative in sorted(manifest.get("files", []), reverse=True):
            path = self.target / relative
            if path.exists():
                self.say(f"remove {path}")
                if not self.dry_run:
                    path.unlink()
        if manifest.get("luarc_line"):
            self.remove_require(
                bool(manifest.get("luarc_created")), bool(manifest.get("luarc_newline_added"))
            )
        self.lua_dir_created = bool(manifest.get("lua_dir_created"))
        manifest_path = self.target / MANIFEST
        self.say(f"remove {manifest_path}")
        if not self.dry_run:
            manifest_path.unlink()
            self.remove_empty_folders()
        print(f"darktable script {'would be ' if self.dry_run else ''}removed from {self.target}")
        return 0

    def remove_require(self, luarc_created: bool, newline_added: bool) -> None:
        if not self.luarc.exists():
            return
        lines = self.luarc.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() != REQUIRE_LINE]
        if kept == lines:
            return
        if luarc_created and not "".join(kept).strip():
            self.say(f"remove {self.luarc} (facecloak created it)")
            if not self.dry_run:
                self.luarc.unlink()
            return
        self.say(f"remove '{REQUIRE_LINE}' from {self.luarc}")
        text = "".join(kept)
        if newline_added and text.endswith("\n"):
            text = text[:-1]
        if not self.dry_run:
            self.luarc.write_text(text, encoding="utf-8")

    def remove_empty_folders(self) -> None:
        """Folders left empty by the removal (never one that still holds a user's file)."""
        folders = sorted((p for p in self.target.rglob("*") if p.is_dir()), reverse=True)
        for folder in [*folders, self.target, *([self.lua] if self.lua_dir_created else [])]:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()

    # ------------------------------------------------------------------ manifest

    def read_manifest(self) -> dict:
        path = self.target / MANIFEST
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: cannot read {path}: {error}") from None

    def save_manifest(self, manifest: dict) -> None:
        data = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        path = self.target / MANIFEST
        if path.exists() and path.read_text(encoding="utf-8") == data:
            return
        self.say(f"write {path}")
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data, encoding="utf-8")


def resolve_engine(engine: str | None) -> tuple[str, str | None]:
    """(facecloak-client path, engine Python or None) from --engine, which names either."""
    path = Path(engine).expanduser() if engine else DEFAULT_CLIENT
    if not engine and not path.exists():
        path = REPO / "bridges" / "facecloak-client"
    path = Path(os.path.abspath(path))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SystemExit(f"error: {path} is not an executable file (give --engine PATH)")
    if is_python(path):
        client = path.parent / "facecloak-client"
        if not client.exists():
            client = REPO / "bridges" / "facecloak-client"
        return str(client), str(path)
    return str(path), None


def is_python(path: Path) -> bool:
    """Whether the file is a Python interpreter (not a script run by one)."""
    if path.name.startswith("python"):
        return True
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF" and "python" in path.resolve().name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="installers/darktable.py",
        description="Install or remove facecloak's darktable script.",
    )
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--configdir", type=Path, help="darktable's configuration folder")
    parser.add_argument("--engine", help="facecloak-client, or the engine's Python")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change, change nothing"
    )
    args = parser.parse_args(argv)
    installer = Installer((args.configdir or default_configdir()).expanduser(), args.dry_run)
    if args.action == "install":
        return installer.install(args.engine)
    return installer.uninstall()


if __name__ == "__main__":
    sys.exit(main())
