"""Tests for facecloak.imageio on real files (../shared/data) and on generated images."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from facecloak import imageio
from facecloak.imageio import ImageError, LoadedImage, load_image, output_format_for, save_image
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
META = DATA / "meta"
MISSING = (
    f"!!! SHARED TEST DATA MISSING: {DATA} (../shared/data next to the project) does not "
    "exist; the real-file tests of facecloak.imageio did NOT run !!!"
)


def meta_dir(*parts: str) -> Path:
    folder = META.joinpath(*parts)
    if not folder.exists():
        pytest.skip(f"{MISSING} (wanted {folder})")
    return folder


def manifest_rows() -> list[dict[str, str]]:
    manifest = meta_dir() / "MANIFEST.tsv"
    if not manifest.exists():
        pytest.skip(f"{MISSING} (wanted {manifest})")
    with manifest.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def smooth_image(h: int, w: int, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A photo-like test image: gradients plus a little noise, with asymmetric content."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 65535
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [x / max(w - 1, 1), y / max(h - 1, 1), (x + 2 * y) / max(w + 2 * h - 3, 1)], axis=2
    )
    if channels == 4:
        base = np.concatenate([base, (0.25 + 0.75 * (x / max(w - 1, 1)))[:, :, None]], axis=2)
    noisy = base * top + rng.normal(0, top * 0.02, base.shape)
    return np.clip(np.rint(noisy), 0, top).astype(dtype)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        out.append((kind, body))
        pos += 12 + length
    return out


def make_png(width: int, height: int, depth: int, colour: int, raw_rows: bytes = b"") -> bytes:
    """A PNG built by hand (filter byte 0 on every row when raw_rows is given)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw_rows))
        + chunk(b"IEND", b"")
    )


def riff_chunks(data: bytes) -> set[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos, kinds = 12, set()
    while pos + 8 <= len(data):
        kinds.add(data[pos : pos + 4])
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        pos += 8 + size + (size & 1)
    return kinds


def jpeg_markers(data: bytes) -> list[int]:
    """Marker codes of a baseline JPEG up to the start of scan."""
    assert data[:2] == b"\xff\xd8"
    pos, markers = 2, []
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


@functools.cache
def srgb_profile() -> bytes:
    """One fixed profile per run (a fresh one carries its creation time)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def no_temp_files(folder: Path) -> bool:
    return not [p.name for p in folder.iterdir() if p.name.startswith(".facecloak-")]


# ----------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("stem", ["Landscape", "Portrait"])
def test_orientation_real_set(stem: str) -> None:
    folder = meta_dir("recurser-orientation")
    reference = load_image(folder / f"{stem}_1.jpg").pixels.astype(np.float32)
    for value in range(9):
        loaded = load_image(folder / f"{stem}_{value}.jpg")
        assert loaded.pixels.shape == reference.shape, value
        diff = np.abs(loaded.pixels.astype(np.float32) - reference).mean()
        assert diff < 4.0, (value, diff)
    # The check has teeth: a mirrored reference is far away.
    assert np.abs(reference[:, ::-1] - reference).mean() > 20.0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_orientation_matches_pillow(tmp_path: Path, fmt: str) -> None:
    pixels = smooth_image(6, 9, seed=3)
    for value in range(1, 9):
        img = Image.fromarray(pixels)
        exif = Image.Exif()
        exif[0x0112] = value
        path = tmp_path / f"o{value}.{fmt.lower()}"
        extra = {"lossless": True} if fmt == "WEBP" else {}
        img.save(path, format=fmt, exif=exif, **extra)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        got = load_image(path).pixels
        assert np.array_equal(got, expected), (fmt, value)


def test_orientation_applies_to_16bit(tmp_path: Path) -> None:
    pixels = smooth_image(5, 8, dtype=np.uint16, seed=4)
    plain = tmp_path / "plain.png"
    save_image(pixels, plain)
    # Add an eXIf chunk with orientation 6 (90 degrees clockwise) before IDAT.
    exif = Image.Exif()
    exif[0x0112] = 6
    body = exif.tobytes()[6:]  # eXIf holds the TIFF structure without the "Exif\0\0" prefix
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF)
    data = plain.read_bytes()
    at = data.index(b"IDAT") - 4
    rotated = tmp_path / "rotated.png"
    rotated.write_bytes(data[:at] + chunk + data[at:])
    loaded = load_image(rotated)
    assert loaded.bit_depth == 16
    assert np.array_equal(loaded.pixels, np.rot90(pixels, k=-1))


# ----------------------------------------------------------------------------- 16 bits


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (157, 203), (9000, 41)])
def test_png16_round_trip_exact(tmp_path: Path, channels: int, shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(1).integers(0, 65536, (*shape, channels), dtype=np.uint16)
    path = save_image(pixels, tmp_path / "out.png")
    data = path.read_bytes()
    chunks = png_chunks(data)
    assert [k for k, _ in chunks if k != b"IDAT"] == [b"IHDR", b"IEND"]
    ihdr = chunks[0][1]
    assert ihdr[8] == 16 and ihdr[9] == (6 if channels == 4 else 2)
    zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))  # checks the adler32 too
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.pixels.dtype == np.uint16
    assert loaded.format == "PNG"
    assert np.array_equal(loaded.pixels, pixels)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_round_trip_exact(tmp_path: Path, channels: int, dtype) -> None:
    pixels = smooth_image(301, 157, channels, dtype=dtype, seed=2)
    path = save_image(pixels, tmp_path / "out.tif", icc_profile=srgb_profile())
    loaded = load_image(path)
    assert loaded.bit_depth == (16 if dtype == np.uint16 else 8)
    assert loaded.pixels.dtype == dtype
    assert np.array_equal(loaded.pixels, pixels)
    assert loaded.icc_profile == srgb_profile()
    with Image.open(path) as img:
        assert img.n_frames == 1


def test_16bit_png_from_another_encoder(tmp_path: Path) -> None:
    """16-bit RGB(A) PNGs not written by us (OpenCV, when installed; else Pillow's own I;16)."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    grey = np.random.default_rng(5).integers(0, 65536, (33, 47), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    loaded = load_image(tmp_path / "grey16.png")
    assert loaded.bit_depth == 16
    assert np.array_equal(loaded.pixels, np.repeat(grey[:, :, None], 3, axis=2))
    if cv2 is not None:
        for channels in (3, 4):
            pixels = np.random.default_rng(6).integers(0, 65536, (40, 31, channels), np.uint16)
            order = [2, 1, 0, 3][:channels]
            for ext in ("png", "tif"):
                path = tmp_path / f"cv{channels}.{ext}"
                assert cv2.imwrite(str(path), pixels[:, :, order])
                assert np.array_equal(load_image(path).pixels, pixels), (channels, ext)
                if ext == "png":
                    assert np.array_equal(
                        cv2.imread(str(save_image(pixels, tmp_path / f"ours{channels}.png")), -1),
                        pixels[:, :, order],
                    )


def test_16bit_grey_alpha_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    grey = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    alpha = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    rows = np.stack([grey, alpha], axis=2).astype(">u2").reshape(5, -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    path = tmp_path / "la16.png"
    path.write_bytes(make_png(6, 5, 16, 4, raw))
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.pixels.shape == (5, 6, 4)
    assert np.array_equal(loaded.pixels[:, :, 0], grey)
    assert np.array_equal(loaded.pixels[:, :, 2], grey)
    assert np.array_equal(loaded.pixels[:, :, 3], alpha)


def test_16bit_grey_big_endian_tiff(tmp_path: Path) -> None:
    grey = np.random.default_rng(8).integers(0, 65536, (7, 9), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.tif")
    Image.frombytes("I;16B", (9, 7), grey.astype(">u2").tobytes()).save(tmp_path / "gb.tif")
    for name in ("g.tif", "gb.tif"):
        loaded = load_image(tmp_path / name)
        assert loaded.bit_depth == 16, name
        assert np.array_equal(loaded.pixels[:, :, 1], grey), name


def test_16bit_reduced_for_jpeg_and_webp(tmp_path: Path) -> None:
    pixels = smooth_image(20, 30, dtype=np.uint16)
    expected = np.rint(pixels / 257.0).astype(np.uint8)
    webp = load_image(save_image(pixels, tmp_path / "x.webp"))
    assert webp.bit_depth == 8 and np.array_equal(webp.pixels, expected)
    bmp = load_image(save_image(pixels, tmp_path / "x.bmp"))
    assert np.array_equal(bmp.pixels, expected)
    jpeg = load_image(save_image(pixels, tmp_path / "x.jpg"))
    assert jpeg.bit_depth == 8
    assert np.abs(jpeg.pixels.astype(int) - expected).mean() < 4.0  # lossy on the noise


# ----------------------------------------------------------------------------- modes


def test_colour_modes(tmp_path: Path) -> None:
    rgb = smooth_image(12, 10, seed=9)
    rgba = smooth_image(12, 10, 4, seed=9)
    grey = rgb[:, :, 0]

    Image.fromarray(grey).save(tmp_path / "l.png")
    got = load_image(tmp_path / "l.png")
    assert got.pixels.shape == (12, 10, 3) and np.array_equal(got.pixels[:, :, 2], grey)

    Image.fromarray(np.stack([grey, rgba[:, :, 3]], axis=2)).save(tmp_path / "la.png")
    got = load_image(tmp_path / "la.png")
    assert got.pixels.shape == (12, 10, 4)
    assert np.array_equal(got.pixels[:, :, 3], rgba[:, :, 3])

    Image.fromarray(grey > 128).save(tmp_path / "one.png")
    got = load_image(tmp_path / "one.png")
    assert got.pixels.dtype == np.uint8 and set(np.unique(got.pixels)) <= {0, 255}

    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    got = load_image(tmp_path / "p.png")
    assert got.pixels.shape == (12, 10, 3)
    assert np.array_equal(got.pixels, np.asarray(pal.convert("RGB")))

    pal.save(tmp_path / "pt.png", transparency=0)
    got = load_image(tmp_path / "pt.png")
    assert got.pixels.shape == (12, 10, 4)
    assert np.array_equal(got.pixels[:, :, 3], np.where(np.asarray(pal) == 0, 0, 255))

    pal.save(tmp_path / "p.gif")
    assert load_image(tmp_path / "p.gif").pixels.shape[2] in (3, 4)

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", icc_profile=srgb_profile())
    got = load_image(tmp_path / "cmyk.jpg")
    assert got.pixels.shape == (12, 10, 3) and got.icc_profile is None

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tif")
    got = load_image(tmp_path / "cmyk.tif")
    assert got.pixels.shape == (12, 10, 3)
    assert np.abs(got.pixels.astype(int) - rgb).max() <= 2

    Image.fromarray(rgb).save(tmp_path / "rgb.ppm")
    assert np.array_equal(load_image(tmp_path / "rgb.ppm").pixels, rgb)

    Image.fromarray(rgba).save(tmp_path / "rgba.tif")
    assert np.array_equal(load_image(tmp_path / "rgba.tif").pixels, rgba)


def test_float_tiff_refused(tmp_path: Path) -> None:
    Image.fromarray(np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)).save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match=r"f\.tif: floating-point"):
        load_image(tmp_path / "f.tif")


def test_rgb_float() -> None:
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        pixels = np.zeros((2, 3, 4), dtype=dtype)
        pixels[0, 0] = top
        image = LoadedImage(pixels, 8 if top == 255 else 16, None, "PNG", Path("x.png"))
        out = image.rgb_float()
        assert out.dtype == np.float32 and out.shape == (2, 3, 3)
        assert out.max() == 1.0 and out.min() == 0.0 and out[0, 0, 0] == 1.0


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    loaded = load_image(tmp_path / "anim.gif")
    assert loaded.frames == 3
    assert loaded.pixels.shape[:2] == (8, 8)
    assert abs(int(loaded.pixels[0, 0, 0]) - 10) <= 2


# ----------------------------------------------------------------------------- alpha, ICC


@pytest.mark.parametrize("ext", ["png", "tif", "webp"])
def test_rgba_alpha_kept(tmp_path: Path, ext: str) -> None:
    pixels = smooth_image(33, 21, 4, seed=11)
    pixels[0, :, 3] = 0
    loaded = load_image(save_image(pixels, tmp_path / f"a.{ext}"))
    assert loaded.pixels.shape == (33, 21, 4)
    assert np.array_equal(loaded.pixels, pixels)


def test_jpeg_settings_and_alpha(tmp_path: Path) -> None:
    pixels = smooth_image(64, 48, seed=12)
    path = save_image(pixels, tmp_path / "q.jpg")
    with Image.open(path) as img:
        assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4
    assert np.abs(load_image(path).pixels.astype(int) - pixels).mean() < 4.0  # lossy on noise

    opaque = np.concatenate([pixels, np.full((64, 48, 1), 255, np.uint8)], axis=2)
    save_image(opaque, tmp_path / "opaque.jpg")
    transparent = opaque.copy()
    transparent[0, 0, 3] = 7
    with pytest.raises(ImageError, match=r"\.png"):
        save_image(transparent, tmp_path / "t.jpg")
    assert not (tmp_path / "t.jpg").exists() and no_temp_files(tmp_path)


def _icc_source() -> Path:
    for row in manifest_rows():
        if (
            row["type"] == "JPEG"
            and row["icc"] == "1"
            and row["pillow_decodes"] == "1"
            and "malformed" not in row["file"]
        ):
            path = META / row["file"]
            if path.exists():
                return path
    pytest.skip(f"{MISSING} (no JPEG with an ICC profile listed in meta/MANIFEST.tsv)")


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp"])
def test_icc_profile_kept_real(tmp_path: Path, ext: str) -> None:
    source = load_image(_icc_source())
    assert source.icc_profile and source.icc_profile[16:20] == b"RGB "
    out = save_image(source.pixels, tmp_path / f"icc.{ext}", icc_profile=source.icc_profile)
    assert load_image(out).icc_profile == source.icc_profile
    with Image.open(out) as img:
        assert img.info.get("icc_profile") == source.icc_profile


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_icc_profile_kept_generated(tmp_path: Path, dtype) -> None:
    profile = srgb_profile()
    out = save_image(smooth_image(5, 5, dtype=dtype), tmp_path / "g.png", icc_profile=profile)
    assert load_image(out).icc_profile == profile


def test_grey_icc_profile_dropped(tmp_path: Path) -> None:
    grey_profile = bytearray(srgb_profile())
    grey_profile[16:20] = b"GRAY"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(
        tmp_path / "g.png", icc_profile=bytes(grey_profile)
    )
    assert load_image(tmp_path / "g.png").icc_profile is None
    with pytest.raises(ImageError, match="not RGB"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "o.png", icc_profile=grey_profile)


# ----------------------------------------------------------------------------- metadata


def _metadata_source() -> Path:
    best = None
    for row in manifest_rows():
        if (
            row["type"] == "JPEG"
            and row["gps"] == "1"
            and "ThumbnailImage" in row["thumbs_previews"]
            and row["pillow_decodes"] == "1"
            and "malformed" not in row["file"]
            and (META / row["file"]).exists()
        ):
            key = (row["xmp_groups"] not in ("", "0"), row["file"])
            if best is None or key > best[0]:
                best = (key, META / row["file"])
    if best is None:
        pytest.skip(f"{MISSING} (no JPEG with EXIF, GPS and a thumbnail in meta/MANIFEST.tsv)")
    return best[1]


ALLOWED_INFO = {
    "icc_profile",
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "dpi",
    "compression",
    "resolution",
    "progressive",
    "progression",
    "loop",  # WebP: Pillow's defaults for a still image
    "background",
}


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp", "bmp"])
def test_metadata_not_written(tmp_path: Path, ext: str) -> None:
    source_path = _metadata_source()
    with Image.open(source_path) as src:  # the source really carries what must go
        exif = src.getexif()
        assert exif and exif.get_ifd(0x8825)  # GPS IFD
    assert source_path.read_bytes().count(b"\xff\xd8\xff") >= 2  # an embedded thumbnail
    loaded = load_image(source_path)
    out = save_image(
        loaded.pixels, tmp_path / f"clean.{ext}", icc_profile=srgb_profile(), protect=[source_path]
    )
    data = out.read_bytes()
    with Image.open(out) as img:
        assert set(img.info) <= ALLOWED_INFO, set(img.info) - ALLOWED_INFO
        exif = img.getexif()  # for TIFF this is IFD0, checked tag by tag below
        assert not exif.get_ifd(0x8769) and not exif.get_ifd(0x8825)  # Exif and GPS IFDs
        if ext != "tif":
            assert not exif
        assert getattr(img, "n_frames", 1) == 1
        if hasattr(img, "applist"):
            assert [name for name, _ in img.applist] in (["APP0", "APP2"], ["APP2", "APP0"])
    for needle in (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"<x:xmpmeta", b"Photoshop 3.0"):
        assert needle not in data, needle
    if ext == "jpg":
        markers = jpeg_markers(data)
        assert set(markers) - {0xE0, 0xE2, 0xDB, 0xC4, 0xC0, 0xC1, 0xC2, 0xDD, 0xDA} == set()
        assert data.count(b"\xff\xd8") == 1  # no embedded thumbnail JPEG
    if ext == "png":
        assert [k for k, _ in png_chunks(data) if k != b"IDAT"] == [b"IHDR", b"iCCP", b"IEND"]
    if ext == "webp":
        assert riff_chunks(data) <= {b"VP8X", b"ICCP", b"VP8L"}
    if ext == "tif":
        with Image.open(out) as img:
            structural = {256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317}
            assert set(img.tag_v2) <= structural | {338, 339, 34675}


def test_metadata_exiftool(tmp_path: Path) -> None:
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        pytest.skip(
            "!!! exiftool is NOT on PATH: the exiftool cross-check of written files did NOT "
            "run (install libimage-exiftool-perl) !!!"
        )
    source_path = _metadata_source()
    loaded = load_image(source_path)
    allowed = {
        "ExifTool",
        "System",
        "File",
        "JFIF",
        "ICC_Profile",
        "ICC-header",
        "ICC-meas",
        "ICC-view",
        "PNG",
        "PNG-pHYs",
        "IFD0",
        "RIFF",
        "BMP",
        "Composite",
    }
    allowed_ifd0 = {"ImageWidth", "ImageHeight", "BitsPerSample", "Compression",
                    "PhotometricInterpretation", "StripOffsets", "SamplesPerPixel",
                    "RowsPerStrip", "StripByteCounts", "XResolution", "YResolution",
                    "PlanarConfiguration", "ResolutionUnit", "Predictor", "ExtraSamples",
                    "SampleFormat"}  # fmt: skip

    def exif_tags(path: Path) -> dict[str, object]:
        result = subprocess.run(
            [exiftool, "-j", "-a", "-G1", str(path)], capture_output=True, text=True, check=True
        )
        return json.loads(result.stdout)[0]

    assert [k for k in exif_tags(source_path) if k.startswith("GPS:")]  # the check has teeth
    for ext in ("jpg", "png", "tif", "webp", "bmp"):
        out = save_image(loaded.pixels, tmp_path / f"e.{ext}", icc_profile=srgb_profile())
        tags = exif_tags(out)
        groups = {key.split(":", 1)[0] for key in tags if ":" in key}
        extra = {g for g in groups if g not in allowed and not g.startswith("ICC")}
        assert not extra, (ext, extra)
        ifd0 = {key.split(":", 1)[1] for key in tags if key.startswith("IFD0:")}
        assert ifd0 <= allowed_ifd0, (ext, ifd0 - allowed_ifd0)
        assert not [k for k in tags if "GPS" in k or "Thumbnail" in k or "XMP" in k], ext
        if ext != "bmp":
            assert "ICC_Profile:ProfileDescription" in tags, ext


# ----------------------------------------------------------------------------- bad input


def test_malformed_fuzz_set() -> None:
    folder = meta_dir("malformed-fuzz")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert len(files) == 103
    loaded = failed = 0
    for path in files:
        start = time.monotonic()
        try:
            image = load_image(path)
        except ImageError as exc:
            failed += 1
            message = str(exc)
            assert "\n" not in message and path.name in message
        else:
            loaded += 1
            assert image.pixels.ndim == 3 and image.pixels.shape[2] in (3, 4)
        assert time.monotonic() - start < 10.0, path
    assert loaded + failed == 103
    assert failed > 50 and loaded > 0  # measured: 10 load, 93 refused


def test_real_unsupported_and_raw_files() -> None:
    folder = meta_dir("exiftool-t-images")
    for name in ("Photoshop.psd", "QuickTime.heic", "JXL.jxl", "CanonRaw.cr2", "DNG.dng"):
        if (folder / name).exists():
            with pytest.raises(ImageError, match=r"unsupported|raw|preview"):
                load_image(folder / name)


def test_not_found_directory_empty_not_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nope\.jpg: file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("hello, not an image\n")
    with pytest.raises(ImageError, match=r"text\.jpg: not an image"):
        load_image(tmp_path / "text.jpg")
    (tmp_path / "fake.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    with pytest.raises(ImageError, match="HEIC"):
        load_image(tmp_path / "fake.heic")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(smooth_image(4, 4)).save(path)
    if getattr(os, "geteuid", lambda: -1)() != 0:
        path.chmod(0)
        try:
            with pytest.raises(ImageError, match=r"secret\.png: permission denied"):
                load_image(path)
        finally:
            path.chmod(0o600)
    # (also as root, where chmod does not stop reading) simulate the refusal
    real_open = os.open

    def refusing_open(name, *args, **kwargs):
        if Path(name) == path:
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(imageio.os, "open", refusing_open)
    with pytest.raises(ImageError, match=r"secret\.png: permission denied"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_truncated_files(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"whole.{fmt.lower()}"
    Image.fromarray(smooth_image(300, 200, seed=13)).save(path, format=fmt)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match=r"cut\."):
        load_image(cut)


def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("!!! os.mkfifo is not available on this platform: FIFO test did NOT run !!!")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def worker() -> None:
        try:
            load_image(fifo)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():  # unblock it before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(timeout=5)
        pytest.fail("load_image blocked on a FIFO")
    assert isinstance(outcome[0], ImageError)
    assert "pipe.jpg" in str(outcome[0]) and "FIFO" in str(outcome[0])


def test_device_refused() -> None:
    if not Path("/dev/null").exists():
        pytest.skip("!!! /dev/null does not exist: device test did NOT run !!!")
    with pytest.raises(ImageError, match="device"):
        load_image("/dev/null")


def test_decompression_bomb_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(make_png(100_000, 100_000, 8, 2))  # header only, no real pixel data
    start = time.monotonic()
    with pytest.raises(ImageError, match=r"bomb\.png: image is too large"):
        load_image(bomb)
    assert time.monotonic() - start < 2.0
    # Within Pillow's own limit but over ours.
    medium = tmp_path / "medium.png"
    medium.write_bytes(make_png(20_000, 6_000, 8, 2))
    with pytest.raises(ImageError, match=r"too large: 20000x6000 = 120,000,000 pixels"):
        load_image(medium)
    small = tmp_path / "small.png"
    Image.fromarray(smooth_image(40, 50)).save(small)
    with pytest.raises(ImageError, match="limit 1,000"):
        load_image(small, max_pixels=1_000)
    assert load_image(small, max_pixels=2_000).pixels.shape == (40, 50, 3)


# ----------------------------------------------------------------------------- saving


def test_output_format_for(tmp_path: Path) -> None:
    assert output_format_for("a.JPG") == "JPEG"
    assert output_format_for("a.jpeg") == "JPEG"
    assert output_format_for(Path("x/y.Tiff")) == "TIFF"
    assert output_format_for("a.png") == "PNG"
    assert output_format_for("a.webp") == "WEBP"
    assert output_format_for("a.bmp") == "BMP"
    for bad in ("a.gif", "a.heic", "noext", "a.jpg.txt"):
        with pytest.raises(ImageError):
            output_format_for(bad)
    with pytest.raises(ImageError, match=r"out\.gif"):
        save_image(smooth_image(3, 3), tmp_path / "out.gif")


def test_save_validates_pixels(tmp_path: Path) -> None:
    for bad in (
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
        [[0, 0, 0]],
    ):
        with pytest.raises(ImageError, match=r"o\.png"):
            save_image(bad, tmp_path / "o.png")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_output_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        save_image(smooth_image(3, 3), tmp_path / "missing" / "o.png")


def test_overwrite_refused_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    with pytest.raises(ImageError, match="already exists"):
        save_image(smooth_image(3, 3), out)
    assert out.read_bytes() == b"precious" and no_temp_files(tmp_path)
    save_image(smooth_image(3, 3), out, overwrite=True)
    assert np.array_equal(load_image(out).pixels, smooth_image(3, 3))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="folder"):
        save_image(smooth_image(3, 3), tmp_path / "dir.png", overwrite=True)


def test_protected_inputs_never_overwritten(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(smooth_image(5, 5)).save(source)
    before = source.read_bytes()
    other = smooth_image(5, 5, seed=99)
    (tmp_path / "sub").mkdir()
    hard = tmp_path / "hard.png"
    os.link(source, hard)
    soft = tmp_path / "soft.png"
    soft.symlink_to(source)
    monkeypatch.chdir(tmp_path)
    for target, guard in [
        (source, source),
        (Path("in.png"), source),  # relative against absolute
        (tmp_path / "sub" / ".." / "in.png", source),
        (hard, source),  # same inode under another name
        (soft, source),  # a link to the input
        (source, Path("sub/../in.png")),
    ]:
        with pytest.raises(ImageError, match="input file"):
            save_image(other, target, overwrite=True, protect=[guard])
    assert source.read_bytes() == before and no_temp_files(tmp_path)
    # An unrelated protected path does not block the write.
    save_image(other, tmp_path / "out.png", protect=[source])


def test_written_file_mode_follows_umask(tmp_path: Path) -> None:
    out = save_image(smooth_image(3, 3), tmp_path / "o.png")
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~old


def test_atomic_write_failure_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "o.png"

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(imageio.os, "fsync", failing_fsync)
    with pytest.raises(ImageError, match=r"o\.png: cannot write the image"):
        save_image(smooth_image(3, 3), out)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []

    # An encoder that dies halfway through, for Pillow's encoders and for ours.
    def half_write(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise ValueError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", half_write)
    with pytest.raises(ImageError, match="encoder exploded"):
        save_image(smooth_image(3, 3), out)
    monkeypatch.undo()

    def broken_chunk(fh, kind, data):
        fh.write(b"partial")
        raise MemoryError

    monkeypatch.setattr(imageio, "_png_chunk", broken_chunk)
    with pytest.raises(ImageError):
        save_image(smooth_image(3, 3, dtype=np.uint16), out)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []

    # An existing output survives a failed overwrite untouched.
    out.write_bytes(b"old")
    monkeypatch.setattr(imageio.os, "fsync", failing_fsync)
    with pytest.raises(ImageError):
        save_image(smooth_image(3, 3), out, overwrite=True)
    monkeypatch.undo()
    assert out.read_bytes() == b"old" and no_temp_files(tmp_path)


def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode; the fsync test covers cleanup
            return
        with pytest.raises(ImageError, match="cannot create a file"):
            save_image(smooth_image(3, 3), folder / "o.png")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_round_trip_every_output_format(tmp_path: Path) -> None:
    pixels = smooth_image(17, 23, seed=21)
    for ext, exact in (("png", True), ("tif", True), ("webp", True), ("bmp", True), ("jpg", False)):
        loaded = load_image(save_image(pixels, tmp_path / f"r.{ext}"))
        assert loaded.pixels.shape == pixels.shape
        if exact:
            assert np.array_equal(loaded.pixels, pixels), ext
        assert loaded.format == output_format_for(f"r.{ext}")


def test_loaded_real_photo_saves_and_reloads(tmp_path: Path) -> None:
    folder = DATA / "photos" / "face_recognition-examples"
    if not folder.exists():
        pytest.skip(f"{MISSING} (wanted {folder})")
    photo = sorted(folder.glob("*.jpg"))[0]
    loaded = load_image(photo)
    out = save_image(
        loaded.pixels, tmp_path / "cloaked.png", icc_profile=loaded.icc_profile, protect=[photo]
    )
    assert np.array_equal(load_image(out).pixels, loaded.pixels)
    assert io.BytesIO(out.read_bytes()).read(8) == b"\x89PNG\r\n\x1a\n"
