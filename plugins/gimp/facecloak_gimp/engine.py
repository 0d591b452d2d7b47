"""Calling the facecloak engine through the bridge client, with GIMP-sized error messages."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, NamedTuple

from facecloak_gimp import locate

Progress = Callable[[float], None]


class PluginError(Exception):
    """A failure to show the user as it is: one line that says what to do."""


class Options(NamedTuple):
    """The procedure's settings; 0 for ``steps``/``samples`` (-1 for ``extra_steps``) keeps
    the mode's own value. The expert ones let tests and scripts ask for a cheap cloak."""

    mode: str = "mid"
    selection_only: bool = True
    seed: int = 0
    steps: int = 0
    samples: int = 0
    extra_steps: int = -1

    def engine_options(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.steps > 0:
            extra["steps"] = self.steps
        if self.samples > 0:
            extra["samples"] = self.samples
        if self.extra_steps >= 0:
            extra["extra_steps"] = self.extra_steps
        return extra


def _bridge() -> Any:
    try:
        locate.add_bridge_to_path()
        import facecloak_bridge
    except ImportError as error:
        raise PluginError(f"Cloak faces: {error}") from None
    return facecloak_bridge


def _failure(bridge: Any, error: Exception) -> PluginError:
    if isinstance(error, bridge.Cancelled):
        return PluginError("Cloak faces was cancelled; the image was not changed.")
    if isinstance(error, bridge.BridgeError):
        return PluginError(f"Cloak faces failed, the image was not changed: {error}")
    return PluginError(
        f"Cloak faces failed, the image was not changed: {type(error).__name__}: {error}"
    )


def cloak_pixels(
    options: Options, progress: Progress
) -> Callable[[bytes, int, int, int, int], tuple[bytes, dict]]:
    """A function that sends pixels to the engine and returns the cloaked pixels and report."""
    bridge = _bridge()

    def run(pixels: bytes, width: int, height: int, channels: int, depth: int) -> tuple:
        started = time.monotonic()

        def report_progress(done: int, total: int) -> None:
            if total > 0:
                progress(min(1.0, done / total))

        try:
            client = bridge.Client()
            result = client.cloak_pixels(
                pixels, width, height, channels, bit_depth=depth,
                mode=options.mode, seed=options.seed, options=options.engine_options(),
                progress=report_progress,
            )  # fmt: skip
        except Exception as error:  # every failure becomes a message; the image stays as it was
            raise _failure(bridge, error) from error
        if (result.width, result.height, result.channels) != (width, height, channels):
            raise PluginError("Cloak faces failed: the engine returned pixels of another size")
        report = dict(result.report)
        report["seconds"] = round(time.monotonic() - started, 2)
        log(summary(report))
        return bytes(result.pixels), report

    return run


def summary(report: dict) -> str:
    """One line for GIMP's console and the tests: faces found, cloaked, seconds."""
    return "facecloak: {} face(s) found, {} cloaked, mode {} in {} s".format(
        report.get("faces_found", 0),
        report.get("faces_cloaked", 0),
        report.get("mode", "?"),
        report.get("seconds", "?"),
    )


def log(line: str) -> None:
    """Plug-in output goes to GIMP's terminal (and to the test's captured output)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def export_scrubbed(save: Callable[[str], None], destination: str) -> dict:
    """Export through ``save(path)`` into a hidden file beside ``destination``, then scrub.

    The temporary file lies in the destination's folder, where the engine can read it even
    when GIMP runs in a container; it is removed whatever happens.
    """
    bridge = _bridge()
    destination = os.path.abspath(destination)
    folder = os.path.dirname(destination)
    if not os.path.isdir(folder):
        raise PluginError(f"Export cloaked copy: the folder {folder} does not exist")
    scratch = tempfile.mkdtemp(prefix=".facecloak-export-", dir=folder)
    try:
        draft = os.path.join(scratch, "draft" + os.path.splitext(destination)[1].lower())
        save(draft)
        if not os.path.isfile(draft):
            raise PluginError(f"Export cloaked copy: GIMP did not write {draft}")
        try:
            return bridge.Client().scrub_file(draft, destination, overwrite=True)
        except bridge.BridgeError as error:
            raise PluginError(
                f"Export cloaked copy failed; nothing was written to {destination}: {error}"
            ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
