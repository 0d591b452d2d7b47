"""The Cloak faces procedure, written once against :class:`Host`, which each GIMP version adapts.

Order matters for "untouched on any failure": the engine runs and its result goes into the
shadow buffer first; only then is anything merged, inside one undo group.
"""

from __future__ import annotations

import json
import time

from facecloak_gimp import engine, pixels, texts


class Host(pixels.Surface):
    """One layer of one open image, as a GIMP version's API presents it."""

    def precision(self) -> int:
        raise NotImplementedError

    def has_alpha(self) -> bool:
        raise NotImplementedError

    def is_rgb(self) -> bool:
        raise NotImplementedError

    def is_group(self) -> bool:
        raise NotImplementedError

    def layer_rect(self) -> pixels.Rect:
        raise NotImplementedError

    def has_selection(self) -> bool:
        raise NotImplementedError

    def selection_rect(self) -> pixels.Rect | None:
        """The selection's bounds within the layer; None when they do not overlap it."""
        raise NotImplementedError

    def progress(self, text: str | None, fraction: float) -> None:
        raise NotImplementedError

    def notify(self, text: str) -> None:
        """A message for the user (GIMP's message area or console)."""
        raise NotImplementedError

    def apply(self, changed: pixels.Rect, ignore_selection: bool) -> None:
        """Merge the shadow buffer as one undo step (bypassing the selection if asked)."""
        raise NotImplementedError


def cloak(host: Host, options: engine.Options) -> pixels.Outcome:
    """Cloak the faces of the host's layer; raises :class:`engine.PluginError` on failure."""
    started = time.monotonic()
    if options.mode not in texts.MODES:
        raise engine.PluginError(f"Cloak faces: unknown mode {options.mode!r}")
    if not host.is_rgb():
        raise engine.PluginError(
            "Cloak faces works on RGB layers: convert the image with Image > Mode > RGB"
        )
    if host.is_group():
        raise engine.PluginError("Cloak faces works on a pixel layer, not on a layer group")
    selected = host.has_selection()
    limited = selected and options.selection_only
    if limited:
        rect = host.selection_rect()
        if rect is None:
            raise engine.PluginError("Cloak faces: the selection does not overlap this layer")
    else:
        rect = host.layer_rect()
    formats = pixels.formats_for(host.precision(), host.has_alpha())
    host.progress("Cloaking faces", 0.0)
    call = engine.cloak_pixels(options, lambda fraction: host.progress(None, fraction))
    outcome = pixels.cloak_rect(host, rect, formats, call)
    engine.log(
        "facecloak: faces (x, y, width, height in layer pixels): " + face_boxes(outcome, rect)
    )
    if outcome.changed is None:
        where = "the selection" if limited else "this layer"
        host.notify(texts.NO_FACES.format(where=where))
        host.progress(None, 1.0)
        return outcome
    host.apply(outcome.changed, ignore_selection=selected and not limited)
    host.progress(None, 1.0)
    seconds = time.monotonic() - started  # what bench/gimp.py reports: invocation to canvas
    engine.log(f"facecloak: layer updated {seconds:.2f} s after the procedure started")
    return outcome


def face_boxes(outcome: pixels.Outcome, rect: pixels.Rect) -> str:
    """The engine's face boxes moved from the region sent to layer coordinates, as JSON."""
    boxes = []
    for face in outcome.report.get("faces", []):
        x, y, width, height = face.get("box", (0, 0, 0, 0))
        boxes.append([x + rect.x, y + rect.y, width, height, bool(face.get("cloaked"))])
    return json.dumps(boxes)
