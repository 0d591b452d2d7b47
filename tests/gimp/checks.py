"""Checks on what a GIMP run did to a layer: where pixels changed, face boxes, the server log."""

from __future__ import annotations

import json
import re

import numpy as np

FACES_LINE = re.compile(r"facecloak: faces \(x, y, width, height in layer pixels\): (\[.*\])")


def raw_layer(path: str, width: int, height: int) -> np.ndarray:
    """A dump written by gimp3_batch.py: ``R'G'B'A float`` rows."""
    return np.fromfile(path, dtype=np.float32).reshape(height, width, 4)


def face_boxes(output: str, run: int = -1) -> list[list[int]]:
    """The cloaked faces' boxes the plug-in printed (layer coordinates) in its ``run``-th call."""
    found = FACES_LINE.findall(output)
    assert found, f"the plug-in printed no face boxes:\n{output[-3000:]}"
    return [box[:4] for box in json.loads(found[run]) if box[4]]


def face_mask(shape: tuple[int, ...], boxes: list[list[int]], grow: float) -> np.ndarray:
    """True inside each box grown by ``grow`` times its size on every side."""
    mask = np.zeros(shape[:2], dtype=bool)
    for x, y, width, height in boxes:
        dx, dy = int(width * grow), int(height * grow)
        mask[max(0, y - dy) : y + height + dy, max(0, x - dx) : x + width + dx] = True
    return mask


def assert_cloaked_in_faces_only(
    before: np.ndarray, after: np.ndarray, boxes, tolerance: float = 0.0
) -> None:
    """Every face box changed; nothing changed far from the faces; alpha identical.

    ``tolerance``: float images pass through a tone-curve conversion when GIMP writes them
    back, so unchanged samples may move by a few float ulps.
    """
    assert before.shape == after.shape
    changed = np.any(np.abs(before[..., :3] - after[..., :3]) > tolerance, axis=2)
    assert boxes, "no face was cloaked"
    for x, y, width, height in boxes:
        inside = changed[y : y + height, x : x + width]
        assert inside.mean() > 0.2, f"face box {(x, y, width, height)} barely changed"
    far = ~face_mask(before.shape, boxes, grow=1.0)
    assert not changed[far].any(), f"{int(changed[far].sum())} pixels changed far from faces"
    assert np.array_equal(before[..., 3], after[..., 3]), "alpha changed"
