"""Lossless JPEG scrub: copy the compressed image segment by segment, keeping an allowlist.

Nothing is decoded or re-encoded, so the pixels (and a cloak made earlier) are untouched.
Kept: the frame, tables, scans and restart markers; the JFIF header without its thumbnail;
ICC profile chunks; Adobe's colour-transform header; Orientation (rewritten alone).
Dropped: every other APPn (EXIF, XMP, extended XMP, MPF, IPTC/Photoshop, maker data, FlashPix,
JFXX thumbnails), comments, and anything after the end-of-image marker (trailers, previews).
"""

from __future__ import annotations

import struct

from facecloak.scrub.exif import orientation_only, read_orientation

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length
# C0-CF: frame headers, DHT and DAC (C8 is reserved); DQT, DNL, DRI; JPEG-LS frame and LSE.
_KEEP = frozenset(range(0xC0, 0xD0)) - {0xC8} | {0xDB, 0xDC, 0xDD, 0xF7, 0xF8}


def _segments(data: bytes):
    """(marker, payload, entropy-coded data after it) for each segment up to EOI."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG (no start-of-image marker)")
    pos = 2
    while True:
        while (
            pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and data[pos + 1] == 0xFF
        ):
            pos += 1  # fill bytes
        if pos + 1 >= len(data):
            raise ValueError("truncated JPEG (no end-of-image marker)")
        if data[pos] != 0xFF:
            raise ValueError(f"corrupt JPEG (expected a marker at byte {pos})")
        marker = data[pos + 1]
        pos += 2
        if marker == _EOI:
            return
        if marker in _STANDALONE:
            yield marker, b"", b""
            continue
        if pos + 2 > len(data):
            raise ValueError("truncated JPEG segment")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise ValueError(f"corrupt JPEG segment length at byte {pos}")
        payload = data[pos + 2 : pos + length]
        pos += length
        scan = b""
        if marker == _SOS:
            end = _scan_end(data, pos)
            scan, pos = data[pos:end], end
        yield marker, payload, scan


def _scan_end(data: bytes, pos: int) -> int:
    """Where entropy-coded data ends: the first marker that is not stuffing or RSTn."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise ValueError("truncated JPEG scan (no end-of-image marker)")
        follower = data[pos + 1]
        if follower == 0x00 or 0xD0 <= follower <= 0xD7:
            pos += 2
        elif follower == 0xFF:
            pos += 1
        else:
            return pos


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("JPEG segment too long")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def orientation(data: bytes) -> int:
    """The EXIF orientation of a JPEG (1 when it has none)."""
    try:
        for marker, payload, _scan in _segments(data):
            if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
                return read_orientation(payload[6:])
            if marker == _SOS:
                break
    except ValueError:
        pass
    return 1


def clean_jpeg(data: bytes, orientation_value: int = 1) -> bytes:
    """The JPEG without metadata; ``orientation_value`` (2-8) is written back alone."""
    out = [b"\xff\xd8"]
    jfif: bytes | None = None
    icc: list[bytes] = []
    adobe: bytes | None = None
    body: list[bytes] = []
    for marker, payload, scan in _segments(data):
        if marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
            jfif = payload[:12] + b"\x00\x00"  # no thumbnail
        elif marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"):
            icc.append(payload)
        elif marker == 0xEE and payload.startswith(b"Adobe") and len(payload) >= 12:
            adobe = payload[:12]
        elif marker in _KEEP or marker == _SOS:
            body.append(_segment(marker, payload) + scan)
        elif marker in _STANDALONE:
            body.append(bytes((0xFF, marker)))
    if not any(part[1] == _SOS for part in body):
        raise ValueError("JPEG has no image data")
    if jfif is not None:
        out.append(_segment(0xE0, jfif))
    if orientation_value != 1:
        out.append(_segment(0xE1, b"Exif\x00\x00" + orientation_only(orientation_value)))
    out.extend(_segment(0xE2, chunk) for chunk in icc)
    if adobe is not None:
        out.append(_segment(0xEE, adobe))
    out.extend(body)
    out.append(b"\xff\xd9")
    return b"".join(out)
