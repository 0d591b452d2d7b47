"""Lossless PNG scrub: copy the chunks on an allowlist, verbatim, and stop at IEND.

Kept: the image (IHDR, PLTE, IDAT, IEND), transparency, colour (iCCP under a neutral name,
sRGB, gAMA, cHRM, cICP, sBIT, HDR levels), pixel density, background colour and the APNG
animation chunks.  Dropped: tEXt, zTXt, iTXt, eXIf, tIME and every other chunk, known or not,
and anything after IEND.  A non-default orientation is written back as an eXIf chunk that
holds Orientation alone.
"""

from __future__ import annotations

import struct
import zlib

from facecloak.scrub.exif import orientation_only, read_orientation
from facecloak.scrub.words import words

SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEEP = frozenset(
    name.encode()
    for name in words(
        "IHDR PLTE IDAT IEND tRNS sRGB gAMA cHRM cICP sBIT mDCv cLLi pHYs bKGD acTL fcTL fdAT"
    )
)


def _chunks(data: bytes):
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG (bad signature)")
    pos = len(SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > len(data) - pos - 12:
            raise ValueError(f"corrupt PNG chunk length at byte {pos}")
        yield kind, data[pos + 8 : pos + 8 + length], data[pos : pos + 12 + length]
        pos += 12 + length
        if kind == b"IEND":
            return


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def orientation(data: bytes) -> int:
    try:
        for kind, payload, _raw in _chunks(data):
            if kind == b"eXIf":
                return read_orientation(payload)
    except ValueError:
        pass
    return 1


def clean_png(data: bytes, orientation_value: int = 1) -> bytes:
    """The PNG without metadata chunks."""
    out = [SIGNATURE]
    seen_ihdr = False
    for kind, payload, raw in _chunks(data):
        if kind == b"IHDR":
            seen_ihdr = True
            out.append(raw)
            if orientation_value != 1:
                out.append(_chunk(b"eXIf", orientation_only(orientation_value)))
        elif kind == b"iCCP":
            name_end = payload.find(b"\x00")
            if name_end > 0:
                out.append(_chunk(b"iCCP", b"ICC profile" + payload[name_end:]))
        elif kind in KEEP:
            out.append(raw)
    if not seen_ihdr:
        raise ValueError("PNG has no IHDR chunk")
    return b"".join(out)
