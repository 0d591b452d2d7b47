"""Lossless GIF scrub: walk the blocks and keep only what draws or animates the image.

Kept: header, screen descriptor, colour tables, image data, graphic-control and plain-text
extensions, the NETSCAPE/ANIMEXTS loop extension and an ICC profile extension.  Dropped:
comments, XMP and every other application extension, and bytes after the trailer.
"""

from __future__ import annotations

_KEEP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _sub_blocks_end(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise ValueError("truncated GIF data block")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _table_size(flags: int) -> int:
    return 3 * (2 ** ((flags & 7) + 1)) if flags & 0x80 else 0


def clean_gif(data: bytes) -> bytes:
    """The GIF without comments or metadata extensions."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF (bad header)")
    pos = 13 + _table_size(data[10])
    out = [data[:pos]]
    images = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated GIF (no trailer)")
        block = data[pos]
        if block == 0x3B:
            out.append(b"\x3b")
            break
        if block == 0x2C:
            if pos + 10 > len(data):
                raise ValueError("truncated GIF image descriptor")
            start = pos
            pos = _sub_blocks_end(data, pos + 10 + _table_size(data[pos + 9]) + 1)
            out.append(data[start:pos])
            images += 1
        elif block == 0x21 and pos + 1 < len(data):
            start, label = pos, data[pos + 1]
            pos = _sub_blocks_end(data, pos + 2)
            app = data[start + 3 : start + 14] if label == 0xFF else b""
            if label in (0xF9, 0x01) or (label == 0xFF and app in _KEEP_APPS):
                out.append(data[start:pos])
        else:
            raise ValueError(f"corrupt GIF block at byte {pos}")
    if not images:
        raise ValueError("GIF has no image")
    return b"".join(out)
