"""The built-in filters drop what exiftool does not even know about: private PNG chunks,
unknown JPEG segments, bytes after the end of the image.  Files are made here, each hiding
the word SECRET in a different place, and the scrubbed bytes must not contain it."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from facecloak.scrub import scrub_file
from facecloak.scrub.exiftool import ExifTool
from PIL import Image, ImageOps, PngImagePlugin

from tests.test_scrub import require_exiftool

SECRET = b"SECRET"


def _pixels() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x013B] = "SECRET artist"  # Artist
    exif[0x010F] = "SECRET make"  # Make
    return exif


def _jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_pixels()).save(
        buffer, "JPEG", exif=_exif(6), comment=b"SECRET comment", quality=90
    )
    data = buffer.getvalue()
    app9 = b"\xff\xe9" + struct.pack(">H", 2 + 14) + b"SECRET private"
    path.write_bytes(data[:2] + app9 + data[2:] + b"SECRET trailer")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png(path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "SECRET author")
    info.add_itxt("Comment", "SECRET itxt", zip=True)
    buffer = io.BytesIO()
    Image.fromarray(_pixels()).save(buffer, "PNG", pnginfo=info, exif=_exif(3))
    data = buffer.getvalue()
    ihdr_end = 8 + 25
    private = _png_chunk(b"prVt", b"SECRET private chunk")
    path.write_bytes(data[:ihdr_end] + private + data[ihdr_end:] + b"SECRET trailer")


def _webp(path: Path) -> None:
    image = Image.fromarray(_pixels())
    image.save(path, "WEBP", lossless=True, exif=_exif(8), xmp=b"<x>SECRET xmp</x>")


def _gif(path: Path) -> None:
    image = Image.fromarray(_pixels()).convert("P")
    image.save(path, "GIF", comment=b"SECRET comment")
    path.write_bytes(path.read_bytes() + b"SECRET trailer")


MAKERS = {".jpg": _jpeg, ".png": _png, ".webp": _webp, ".gif": _gif}


@pytest.mark.parametrize("with_exiftool", [True, False], ids=["exiftool", "builtin"])
@pytest.mark.parametrize("suffix", sorted(MAKERS))
def test_hidden_metadata_is_gone_and_the_picture_is_the_same(tmp_path, suffix, with_exiftool):
    if with_exiftool:
        require_exiftool()
    source, output = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    MAKERS[suffix](source)
    assert source.read_bytes().count(SECRET) >= 2
    tool = None if with_exiftool else ExifTool(disabled=True)
    report = scrub_file(source, output, exiftool=tool)
    assert report.lossless
    assert SECRET not in output.read_bytes()
    with Image.open(source) as before, Image.open(output) as after:
        assert np.array_equal(np.asarray(before), np.asarray(after))
        shown_before = np.asarray(ImageOps.exif_transpose(before))
        shown_after = np.asarray(ImageOps.exif_transpose(after))
        assert np.array_equal(shown_before, shown_after), "displays the same way up"
