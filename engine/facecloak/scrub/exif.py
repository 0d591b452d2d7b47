"""The only EXIF a lossless scrub writes back: an IFD0 holding Orientation, nothing else.

Reading is done here too (bounds-checked), so that the orientation survives even when the
rest of the EXIF block is what the scrub removes.
"""

from __future__ import annotations

import struct

ORIENTATION_TAG = 0x0112
_SHORT = 3


def read_orientation(tiff: bytes) -> int:
    """Orientation (1-8) from a TIFF-structured EXIF block; 1 when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        for index in range(min(count, 1000)):
            tag, kind, number = struct.unpack_from(order + "HHI", tiff, offset + 2 + 12 * index)
            if tag == ORIENTATION_TAG and kind == _SHORT and number >= 1:
                (value,) = struct.unpack_from(order + "H", tiff, offset + 10 + 12 * index)
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def orientation_only(orientation: int) -> bytes:
    """A little-endian TIFF block whose single IFD holds the Orientation tag."""
    header = b"II*\x00" + struct.pack("<I", 8)
    entry = struct.pack("<HHIHH", ORIENTATION_TAG, _SHORT, 1, orientation, 0)
    return header + struct.pack("<H", 1) + entry + struct.pack("<I", 0)
