"""Screenshots of GIMP 3's Filters > Privacy menu and the Cloak faces dialog, for the user guide.

Runs the real GIMP 3 GUI on a private Xvfb display, drives it with xdotool (keyboard only:
Filters is Alt+R, Privacy is the menu's last entry, Cloak faces its first) and captures with
ImageMagick's ``import``. Used by tests/test_gimp_screenshots.py; also runnable by hand:

    .venv/bin/python -m tests.gimp.screenshots docs/img
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.gimp import harness

TOOLS = ("Xvfb", "xdotool", "import")
MAIN_WINDOW = "\u2013 GIMP$"  # GIMP 3's image window title ends with an en dash and "GIMP"
DIALOG = "^Cloak faces$"


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


def take(box: harness.Sandbox, photo: Path, folder: Path, timeout: float = 120) -> list[Path]:
    """Open ``photo`` in GIMP 3, capture the menu and the dialog into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    menu, dialog = folder / "gimp3-filters-privacy-menu.png", folder / "gimp3-cloak-dialog.png"
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
            with suppress(ProcessLookupError):
                os.killpg(gimp.pid, signal.SIGTERM)
            try:
                gimp.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(gimp.pid, signal.SIGKILL)
                gimp.wait(10)
    return [menu, dialog]


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "docs/img").resolve()
    photo = harness.SHARED / "data" / "photos" / "dlib-examples-faces" / "2008_001322.jpg"
    box = harness.Sandbox.create(("3",))
    try:
        for path in take(box, photo, target):
            print(path)
    finally:
        box.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
