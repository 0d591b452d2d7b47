"""Which format a file really is (from its bytes), and which files the scrubber refuses.

Camera raw files are refused before any tool touches them: ``exiftool -all=`` on a raw file
can remove the maker data that raw converters need to render it.
"""

from __future__ import annotations

import struct
from pathlib import Path

from facecloak.raw_formats import raw_format_name
from facecloak.scrub.words import words

# Formats the scrubber handles, as named in reports and in the allowlist.
SUPPORTED = ("JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF", "GIF", "BMP", "PPM")

RAW_EXTENSIONS = words(
    ".3fr .ari .arw .bay .cr2 .cr3 .crw .dcr .dng .erf .fff .iiq .k25 .kdc .mef .mos .mrw .nef"
    " .nrw .orf .pef .raf .raw .rw2 .rwl .sr2 .srf .srw .x3f"
)
RAW_ADVICE = "export it to JPEG, PNG or TIFF first (e.g. with darktable), then scrub the export"

_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2")
_DNG_VERSION = 50706


class Refused(Exception):
    """The file is of a kind the scrubber will not touch (the message says why)."""


def _tiff_is_dng(data: bytes) -> bool:
    """Whether IFD0 of a classic TIFF carries DNGVersion (bounds-checked, no decoding)."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        for index in range(min(count, 4096)):
            (tag,) = struct.unpack_from(order + "H", data, offset + 2 + 12 * index)
            if tag == _DNG_VERSION:
                return True
    except struct.error:
        return False
    return False


def _unsupported(head: bytes) -> str | None:
    checks = (
        (b"8BPS", "Photoshop PSD"),
        (b"%PDF", "PDF"),
        (b"\xff\x0a", "JPEG XL"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
        (b"\xff\x4f\xff\x51", "JPEG 2000"),
        (b"BPG\xfb", "BPG"),
        (b"II+\x00", "BigTIFF"),
        (b"MM\x00+", "BigTIFF"),
    )
    for signature, name in checks:
        if head.startswith(signature):
            return name
    lowered = head.lstrip().lower()
    if b"<svg" in lowered:
        return "SVG"
    if lowered.startswith((b"<?xml", b"<x:xmpmeta", b"<?xpacket")):
        return "XML/XMP (a sidecar, not an image: delete it or use --sidecars delete)"
    return None


def detect(path: Path, data: bytes) -> str:
    """The format name (one of ``SUPPORTED``), or :class:`Refused` with the reason."""
    head = data[:64]
    raw = raw_format_name(head)
    if raw is None and path.suffix.lower() in RAW_EXTENSIONS:
        raw = f"camera raw ({path.suffix.lower()})"
    if raw is None and head.startswith((b"II*\x00", b"MM\x00*")) and _tiff_is_dng(data):
        raw = "DNG raw"
    if raw is not None:
        raise Refused(f"{raw} files are not scrubbed: {RAW_ADVICE}")
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
        return "PPM"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        (box_size,) = struct.unpack_from(">I", head, 0)
        compatible = head[16 : min(box_size, len(head))]
        if brand in (b"avif", b"avis") or (brand == b"mif1" and b"avif" in compatible):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
        raise Refused(f"unsupported ISO media file (brand {brand.decode('latin-1')!r})")
    known = _unsupported(data[:1024])
    if known is not None:
        raise Refused(f"unsupported format: {known}")
    raise Refused(
        "not an image, or an unsupported format (supported: " + ", ".join(SUPPORTED) + ")"
    )


EXTENSIONS = {
    "JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "HEIF": ".heic",
    "AVIF": ".avif", "GIF": ".gif", "BMP": ".bmp", "PPM": ".ppm",
}  # fmt: skip

# Extensions that name each format, for checking that an output's name fits its contents.
SUFFIXES = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"), "PNG": (".png",), "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",), "HEIF": (".heic", ".heif", ".hif"), "AVIF": (".avif",),
    "GIF": (".gif",), "BMP": (".bmp", ".dib"), "PPM": (".ppm", ".pgm", ".pbm", ".pnm"),
}  # fmt: skip


def suffix_mismatch(fmt: str, source: Path, destination: Path) -> str | None:
    """Why ``destination``'s extension does not fit ``fmt`` data (None when it does).

    A lossless scrub keeps the format, so ``photo.png -o photo.jpg`` would write PNG data
    under a JPEG name.  The source's own extension is always accepted (``--output-dir``).
    """
    suffix = destination.suffix.lower()
    if suffix == source.suffix.lower() or suffix in SUFFIXES[fmt]:
        return None
    return (
        f"the output name ends in {suffix or 'no extension'!r} but the file is {fmt}; "
        f"a scrub keeps the format (use {SUFFIXES[fmt][0]})"
    )
