"""Lossless WebP scrub: keep the image chunks of the RIFF container, drop EXIF, XMP and the rest.

exiftool 12.x cannot write WebP, so this is the only WebP path.  The VP8X flags are rewritten
to match what is left; a non-default orientation is kept as an Orientation-only EXIF chunk.
"""

from __future__ import annotations

import struct

from facecloak.scrub.exif import orientation_only, read_orientation

_IMAGE = frozenset((b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"))
_ICC, _EXIF, _XMP = 0x20, 0x08, 0x04


def _chunks(data: bytes):
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file (bad RIFF header)")
    (size,) = struct.unpack_from("<I", data, 4)
    end = min(len(data), size + 8)
    if size + 8 > len(data):
        raise ValueError("truncated WebP file")
    pos = 12
    while pos + 8 <= end:
        kind, length = struct.unpack_from("<4sI", data, pos)
        if pos + 8 + length > end:
            raise ValueError(f"corrupt WebP chunk length at byte {pos}")
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) & 1 else b""
    return kind + struct.pack("<I", len(payload)) + payload + pad


def _exif_block(payload: bytes) -> bytes:
    return payload[6:] if payload.startswith(b"Exif\x00\x00") else payload


def orientation(data: bytes) -> int:
    try:
        for kind, payload in _chunks(data):
            if kind == b"EXIF":
                return read_orientation(_exif_block(payload))
    except ValueError:
        pass
    return 1


def clean_webp(data: bytes, orientation_value: int = 1) -> bytes:
    """The WebP without EXIF, XMP or unknown chunks."""
    vp8x: bytes | None = None
    kept: list[tuple[bytes, bytes]] = []
    for kind, payload in _chunks(data):
        if kind == b"VP8X":
            if len(payload) < 10:
                raise ValueError("corrupt WebP VP8X chunk")
            vp8x = payload[:10]
        elif kind in _IMAGE:
            kept.append((kind, payload))
    if not any(kind in (b"VP8 ", b"VP8L", b"ANMF") for kind, _ in kept):
        raise ValueError("WebP has no image data")
    body: list[bytes] = []
    if vp8x is not None:
        flags = vp8x[0] & ~(_ICC | _EXIF | _XMP)
        if any(kind == b"ICCP" for kind, _ in kept):
            flags |= _ICC
        if orientation_value != 1:
            flags |= _EXIF
        body.append(_chunk(b"VP8X", bytes((flags,)) + vp8x[1:]))
    body.extend(_chunk(kind, payload) for kind, payload in kept)
    if vp8x is not None and orientation_value != 1:
        body.append(_chunk(b"EXIF", orientation_only(orientation_value)))
    content = b"WEBP" + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(content)) + content
