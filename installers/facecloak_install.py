#!/usr/bin/env python3
"""Install, check and remove facecloak for the current user (driven by installers/install.sh).

The engine lives in its own virtual environment under ``$XDG_DATA_HOME/facecloak/engine``, so
nothing it installs can clash with the system's or GIMP's Python. The plug-in installers
(``gimp.py``, ``darktable.py``) keep their own manifests; this script's manifest records the
engine environment and the command links, so ``--uninstall`` removes exactly what was made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMMANDS = ("facecloak", "facecloak-client")


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME", "")
    return Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"


def config_home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(base) if os.path.isabs(base) else Path.home() / ".config"


@dataclass
class Layout:
    """Where everything goes; all of it under the user's own folders."""

    root: Path = field(default_factory=lambda: data_home() / "facecloak")
    bin_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "bin")

    @property
    def engine(self) -> Path:
        return self.root / "engine"

    @property
    def python(self) -> Path:
        return self.engine / "bin" / "python"

    @property
    def manifest(self) -> Path:
        return self.root / "install-manifest.json"


class Steps:
    """Runs (or, with --dry-run, only prints) each step, and says what it did."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def say(self, text: str) -> None:
        print(("would " if self.dry_run else "") + text, flush=True)

    def run(self, description: str, command: list[str], plans_itself: bool = False) -> None:
        """Run ``command``; under --dry-run only print it, unless it has a dry run of its own."""
        self.say(description)
        if self.dry_run and not plans_itself:
            print("    $ " + " ".join(command))
            return
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            code = result.returncode
            raise SystemExit(f"facecloak install: failed to {description} (exit {code})")


def _pip(layout: Layout, wheelhouse: Path | None) -> list[str]:
    command = [str(layout.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if wheelhouse is not None:
        command += ["--no-index", "--find-links", str(wheelhouse)]
    return command


def _torch_steps(steps: Steps, layout: Layout, args: argparse.Namespace) -> None:
    """torch first, pinned, so nothing later pulls a different build."""
    pip = _pip(layout, args.wheelhouse)
    if args.wheelhouse is not None or (args.torch_index is None and args.cuda):
        steps.run(f"install {TORCH}" + (" (CUDA build)" if args.cuda else ""), [*pip, TORCH])
        return
    if args.torch_index is not None:
        steps.run(f"install {TORCH} from {args.torch_index}",
                  [*pip, "--index-url", args.torch_index, TORCH])  # fmt: skip
        return
    # A CPU build already on this machine (pip's find-links or a wheelhouse) wins; otherwise
    # PyTorch's CPU index, since PyPI's Linux wheel is the multi-GB CUDA build.
    probe = [*pip, "--no-index", "--no-deps", TORCH]
    steps.say(f"install {TORCH} (CPU build: a local copy first, else {CPU_INDEX})")
    if steps.dry_run:
        print("    $ " + " ".join(probe))
        return
    if subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        steps.run(f"install {TORCH}'s own requirements", [*pip, TORCH])
    else:
        steps.run(f"install {TORCH} from {CPU_INDEX}", [*pip, "--index-url", CPU_INDEX, TORCH])


def _candidate_dirs(layout: Layout) -> list[Path]:
    """Folders an install may create; those it did create are removed again when empty."""
    home, config = Path.home(), config_home()
    return [
        home / ".local", home / ".local" / "share", layout.root, layout.bin_dir,
        config, config / "facecloak", config / "darktable", config / "darktable" / "lua",
        config / "GIMP", config / "GIMP" / "3.0", config / "GIMP" / "2.10",
        config / "GIMP" / "3.0" / "plug-ins", config / "GIMP" / "2.10" / "plug-ins",
    ]  # fmt: skip


def install(args: argparse.Namespace, layout: Layout) -> int:
    steps = Steps(args.dry_run)
    before = {d for d in _candidate_dirs(layout) if d.exists()}
    if layout.manifest.exists():  # an upgrade keeps what the first install recorded
        before -= set(map(Path, json.loads(layout.manifest.read_text()).get("created_dirs", [])))
    made: dict = {"engine": str(layout.engine), "links": []}
    # The server makes its log folder later; remember whether its parents were the user's.
    earlier = json.loads(layout.manifest.read_text()) if layout.manifest.exists() else {}
    made["state_dirs"] = earlier.get("state_dirs") or [
        str(d) for d in (_state_home(), _state_home().parent) if not d.exists()
    ]
    if not layout.python.exists():
        steps.run(f"create the engine environment {layout.engine}",
                  [sys.executable, "-m", "venv", str(layout.engine)])  # fmt: skip
    else:
        steps.say(f"upgrade the engine environment in place: {layout.engine}")
    _torch_steps(steps, layout, args)
    # --no-cache-dir: the wheel built from this checkout must not stay behind in pip's cache.
    steps.run("install the facecloak engine (and its eval extra)",
              [*_pip(layout, args.wheelhouse), "--no-cache-dir", f"{REPO}[eval]"])  # fmt: skip
    for name in COMMANDS:
        link, target = layout.bin_dir / name, layout.engine / "bin" / name
        if link.is_symlink() and os.readlink(link) == str(target):
            made["links"].append(str(link))
            continue
        if link.exists() or link.is_symlink():
            print(f"leaving {link} alone: it is not ours (remove it to let facecloak link there)")
            continue
        steps.say(f"link {link} -> {target}")
        if not args.dry_run:
            layout.bin_dir.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
        made["links"].append(str(link))
    _plugins(steps, layout, args, "install")
    if not args.dry_run:
        layout.root.mkdir(parents=True, exist_ok=True)
        made["created_dirs"] = [
            str(d) for d in _candidate_dirs(layout) if d.exists() and d not in before
        ]
        layout.manifest.write_text(json.dumps(made, indent=1) + "\n")
    print(f"done. Check it: {REPO}/installers/install.sh --check; "
          f"undo it: {REPO}/installers/install.sh --uninstall")  # fmt: skip
    return 0


def _plugins(steps: Steps, layout: Layout, args: argparse.Namespace, action: str) -> None:
    """Hand over to the GIMP and darktable installers for the programs this machine has."""
    flags = ["--dry-run"] if args.dry_run else []
    here = Path(__file__).resolve().parent
    gimp = [sys.executable, str(here / "gimp.py"), action, *flags]
    darktable = [sys.executable, str(here / "darktable.py"), action, *flags]
    # Their own dry runs need the engine to exist; before the first install, print them only.
    plans = action == "uninstall" or layout.python.exists()
    if action == "install":
        gimp += ["--engine-python", str(layout.python)]
        darktable += ["--engine", str(layout.engine / "bin" / "facecloak-client")]
    if action == "uninstall" or _has_gimp():
        steps.run(f"{action} the GIMP plug-in", gimp, plans_itself=plans)
    else:
        print("GIMP not found: skipping its plug-in (install GIMP, then run this again)")
    if action == "uninstall" or shutil.which("darktable") or shutil.which("darktable-cli"):
        steps.run(f"{action} the darktable script", darktable, plans_itself=plans)
    else:
        print("darktable not found: skipping its script (install darktable, then run this again)")


def _has_gimp() -> bool:
    programs = ("gimp", "gimp-3.0", "gimp-2.10", "gimp-console-3.0", "gimp-console-2.10")
    profiles = [config_home() / "GIMP" / v for v in ("3.0", "2.10")]
    return any(shutil.which(p) for p in programs) or any(p.is_dir() for p in profiles)


def uninstall(args: argparse.Namespace, layout: Layout) -> int:
    steps = Steps(args.dry_run)
    _plugins(steps, layout, args, "uninstall")
    if not layout.manifest.exists():
        print(f"no facecloak installation recorded in {layout.manifest}: nothing else to remove")
        return 0
    made = json.loads(layout.manifest.read_text())
    client = layout.engine / "bin" / "facecloak-client"
    if client.exists() and not args.dry_run:  # a running server holds files open: stop it
        subprocess.run([str(client), "stop"], check=False, capture_output=True, timeout=60)
    for link in map(Path, made.get("links", [])):
        if link.is_symlink() and str(layout.engine) in os.readlink(link):
            steps.say(f"remove {link}")
            if not args.dry_run:
                link.unlink()
    engine = Path(made.get("engine", layout.engine))
    if engine == layout.engine and engine.is_dir():
        steps.say(f"remove the engine environment {engine}")
        if not args.dry_run:
            shutil.rmtree(engine)
    runtime = _runtime_dir()
    if runtime.is_dir():  # the stopped server's socket folder
        steps.say(f"remove {runtime}")
        if not args.dry_run:
            shutil.rmtree(runtime, ignore_errors=True)
    state = _state_home() / "facecloak"
    if state.is_dir():
        steps.say(f"remove the server's logs {state}")
        if not args.dry_run:
            shutil.rmtree(state)
    steps.say(f"remove {layout.manifest}")
    if not args.dry_run:
        layout.manifest.unlink()
        recorded = made.get("created_dirs", []) + made.get("state_dirs", [])
        created = sorted(map(Path, recorded), key=lambda d: -len(d.parts))
        for folder in [layout.root, config_home() / "facecloak", *created]:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return 0


def _runtime_dir() -> Path:
    """The server's socket folder, computed the way the bridge computes it."""
    sys.path.insert(0, str(REPO / "bridges"))
    from facecloak_bridge.paths import runtime_dir

    return Path(runtime_dir())


def _state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME", "")
    return Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install.sh", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="check everything (the doctor)")
    action.add_argument("--uninstall", action="store_true", help="remove what install made")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done")
    parser.add_argument("--cuda", action="store_true", help="PyTorch's CUDA build (NVIDIA GPU)")
    parser.add_argument("--wheelhouse", type=Path, help="install offline from this folder")
    parser.add_argument("--torch-index", help="where to get torch from (a pip index URL)")
    args = parser.parse_args(argv)
    layout = Layout()
    if args.check:
        from doctor import run_checks  # beside this file

        return run_checks(layout.python, layout.engine)
    if args.wheelhouse is not None and not args.wheelhouse.is_dir():
        parser.error(f"{args.wheelhouse}: no such folder")
    return uninstall(args, layout) if args.uninstall else install(args, layout)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
