"""Camera raw files, recognised by their first bytes.

Image reading and scrubbing both refuse raw files (they are exported through darktable, never
rewritten here), so both ask this one place what a raw file looks like.
"""

from __future__ import annotations


def raw_format_name(head: bytes) -> str | None:
    """The camera raw format that ``head`` (a file's first bytes) starts, or None."""
    if head.startswith(b"II*\x00") and head[8:10] == b"CR":
        return "Canon CR2 raw"
    if head[4:12] == b"ftypcrx ":
        return "Canon CR3 raw"
    if head.startswith(b"II\x1a\x00\x00\x00HEAPCCDR"):
        return "Canon CRW raw"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "Fujifilm RAF raw"
    if head.startswith(b"\x00MRM"):
        return "Minolta MRW raw"
    if head.startswith(b"FOVb"):
        return "Sigma X3F raw"
    if head.startswith((b"IIU\x00", b"IIRO", b"MMOR")):
        return "camera raw (Panasonic/Olympus)"
    return None
