"""XMP sidecars that editors (darktable, Lightroom, digiKam) leave next to a photo.

A sidecar carries the same metadata as the photo (often more: keywords, faces, places), so a
scrub that ignores it leaves the information behind.  By default they are only reported.
"""

from __future__ import annotations

import os
from pathlib import Path

ACTIONS = ("report", "keep", "delete")


def find_sidecars(photo: Path) -> list[Path]:
    """``photo.jpg.xmp`` and ``photo.xmp`` next to ``photo.jpg`` (any letter case)."""
    wanted = {f"{photo.name}.xmp".lower(), f"{photo.stem}.xmp".lower()}
    folder = photo.parent
    try:
        names = os.listdir(folder if str(folder) else ".")
    except OSError:
        return []
    found = [folder / name for name in sorted(names) if name.lower() in wanted]
    return [path for path in found if path.is_file() and path.name != photo.name]


def delete_sidecars(paths: list[Path]) -> list[Path]:
    """Delete the sidecars; returns those actually deleted."""
    deleted = []
    for path in paths:
        try:
            path.unlink()
        except OSError:
            continue
        deleted.append(path)
    return deleted
