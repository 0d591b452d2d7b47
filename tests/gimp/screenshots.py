"""Screenshots of the Cloak faces dialog in GIMP 3 and GIMP 2.10, and GIMP 3's Filters > Privacy.

Runs the real GIMP GUI (GIMP 3, or the host's ``gimp-2.10``) on a private Xvfb display with a
throw-away profile that has the plug-in installed, opens a photo, drives GIMP with xdotool
(keyboard only: Filters is Alt+R, then Up to Privacy, Right, Return on Cloak faces, its first
entry) and captures with ImageMagick's ``import``. Every step waits with a timeout. Used by
tests/test_gimp_screenshots.py and scripts/docs_images.sh; also runnable by hand:

    .venv/bin/python -m tests.gimp.screenshots docs/img                 # both GIMPs
    .venv/bin/python -m tests.gimp.screenshots --gimp 2.10 docs/img     # one of them
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.gimp import harness

TOOLS = ("Xvfb", "xdotool", "import")
MAIN_WINDOW = "\u2013 GIMP$"  # the image window's title ends with an en dash and "GIMP" (3, 2.10)
DIALOG = "^Cloak faces$"
# Filters' last entries in Debian's GIMP 2.10: Privacy, Script-Fu, Goat-exercise.
GIMP2_PRIVACY = ("Up", "Up", "Up")
PICTURES = {"3": ("gimp3-filters-privacy-menu.png", "gimp3-cloak-dialog.png"),
            "2.10": ("gimp2-cloak-dialog.png",)}  # fmt: skip


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if not _which(tool)]


def _which(tool: str) -> bool:
    return any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ["PATH"].split(":"))


@contextmanager
def xvfb():
    """A private X display; yields its name (":N")."""
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        number = server.stdout.readline().strip()
        assert number.isdigit(), "Xvfb did not report a display"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


class Screen:
    """xdotool and import against one display."""

    def __init__(self, display: str) -> None:
        self.env = {**os.environ, "DISPLAY": display}

    def run(self, *args: str) -> str:
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.stdout.strip()

    def window(self, name: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.run("xdotool", "search", "--onlyvisible", "--name", name).split()
            if found:
                return found[0]
            time.sleep(0.5)
        raise TimeoutError(f"no window named {name!r} appeared in {timeout:.0f} s")

    def keys(self, window: str, *keys: str) -> None:
        self.run("xdotool", "windowfocus", "--sync", window)
        for key in keys:
            self.run("xdotool", "key", key)
            time.sleep(0.7)

    def capture(self, target: Path, window: str = "root", crop: str | None = None) -> None:
        args = ["import", "-window", window]
        if crop:
            args += ["-crop", crop, "+repage"]
        self.run(*args, str(target))
        if not target.exists():
            raise RuntimeError(f"import wrote no {target}")

    def geometry(self, window: str) -> tuple[int, int]:
        values = dict(
            line.split("=", 1)
            for line in self.run("xdotool", "getwindowgeometry", "--shell", window).split()
        )
        return int(values["WIDTH"]), int(values["HEIGHT"])


def gimp2_missing() -> str | None:
    """Why the GIMP 2.10 GUI cannot run here, or None."""
    if shutil.which("gimp-2.10"):
        return None
    return (
        "SKIPPED: GIMP 2.10 not found (no gimp-2.10 on PATH); on Debian 12 run "
        ".ci/setup.d/gimp.sh as root (Debian 13 no longer packages GIMP 2.10)"
    )


def take(box: harness.Sandbox, photo: Path, folder: Path, timeout: float = 120) -> list[Path]:
    """Open ``photo`` in GIMP 3, capture the menu and the dialog into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    menu, dialog = (folder / name for name in PICTURES["3"])
    with xvfb() as display:
        screen = Screen(display)
        gimp = box.start_gimp3_gui(display, str(photo))
        try:
            main = screen.window(MAIN_WINDOW, timeout)
            time.sleep(3)  # let the canvas paint
            width, height = screen.geometry(main)
            screen.keys(main, "alt+r", "Up", "Right")  # Filters, Privacy (last), Cloak faces
            screen.capture(menu, crop=f"{width}x{height}+0+0")
            screen.keys(main, "Return")
            window = screen.window(DIALOG, 60)
            time.sleep(1.5)
            screen.capture(dialog, window=window)
            screen.keys(window, "Escape")
        finally:
            _stop(gimp)
    return [menu, dialog]


def take_gimp2(box: harness.Sandbox, photo: Path, folder: Path, timeout: float = 120) -> list[Path]:
    """Open ``photo`` in GIMP 2.10, capture the Cloak faces dialog into ``folder``.

    ``box`` must have the GIMP 2.10 plug-in installed (``Sandbox.create(("2.10",))``). The
    dialog is GTK 2's, drawn by the plug-in; without a window manager it has no title bar, so
    the capture is the dialog itself. GIMP quits with Ctrl+Q (the image is unchanged, so it
    asks nothing); a GIMP that does not is stopped.
    """
    assert gimp2_missing() is None, gimp2_missing()
    folder.mkdir(parents=True, exist_ok=True)
    (dialog,) = (folder / name for name in PICTURES["2.10"])
    with xvfb() as display:
        screen = Screen(display)
        env = {**box.env, "DISPLAY": display}
        command = ["timeout", "-k", "10", "300", "gimp-2.10", "--no-splash", str(photo)]
        log = open(box.work / "gimp2-gui.log", "wb")  # noqa: SIM115 - closed below
        gimp = subprocess.Popen(
            command, env=env, stdout=log, stderr=log, cwd=box.work, start_new_session=True
        )
        try:
            main = screen.window(MAIN_WINDOW, timeout)
            time.sleep(3)  # let the canvas paint
            screen.keys(main, "alt+r", *GIMP2_PRIVACY, "Right", "Return")
            try:
                window = screen.window(DIALOG, 60)
            except TimeoutError as error:
                text = (box.work / "gimp2-gui.log").read_text(errors="replace")[-2000:]
                raise TimeoutError(f"{error}; Filters > Privacy > Cloak faces did not open "
                                   f"the dialog. GIMP's output:\n{text}") from None  # fmt: skip
            time.sleep(1.5)  # let GTK draw it
            screen.capture(dialog, window=window)
            screen.keys(window, "Escape")
            screen.keys(main, "ctrl+q")
            with suppress(subprocess.TimeoutExpired):  # did not quit: stopped below
                gimp.wait(30)
        finally:
            _stop(gimp)
            log.close()
    return [dialog]


def _stop(gimp: subprocess.Popen) -> None:
    """Stop GIMP's process group (GIMP and its plug-ins); nothing if it has quit."""
    if gimp.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(gimp.pid, signal.SIGTERM)
    try:
        gimp.wait(20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(gimp.pid, signal.SIGKILL)
        gimp.wait(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.gimp.screenshots")
    parser.add_argument("folder", nargs="?", default="docs/img", type=Path)
    parser.add_argument(
        "--gimp", action="append", choices=tuple(PICTURES), help="default: both GIMPs"
    )
    args = parser.parse_args(argv)
    target = args.folder.resolve()
    photo = harness.SHARED / "data" / "photos" / "dlib-examples-faces" / "2008_001322.jpg"
    for version in args.gimp or tuple(PICTURES):
        box = harness.Sandbox.create((version,))
        try:
            paths = (take if version == "3" else take_gimp2)(box, photo, target)
        finally:
            box.close()
        for path in paths:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
