"""Reading and writing images for the face-cloaking engine.

Reading (:func:`load_image`)
    * Formats read: JPEG (including MPO, reported as ``"JPEG"``), PNG (APNG: first frame),
      TIFF, WebP, BMP, GIF (first frame), PPM/PGM/PBM and AVIF (when Pillow has AVIF support).
      Anything else (HEIC, JPEG XL, PSD, SVG, PDF, EPS, camera raw files, JPEG 2000, ...) is
      refused with a one-line :class:`ImageError`.  Pillow is restricted to this list, so it
      never starts an external program (Ghostscript for EPS) or a rarely used decoder.
    * The EXIF Orientation (values 1-8) is applied to the pixels; broken EXIF is ignored.
    * Colour modes: 1-bit, L, P and RGB give RGB; LA, PA, La, RGBa, P/L/RGB with transparency
      give RGBA (alpha kept exactly).  CMYK is converted to sRGB (through its embedded profile
      when LittleCMS can use it, else Pillow's plain formula) and its ICC profile is dropped.
      YCbCr and HSV give RGB; LAB is converted through LittleCMS or refused.
    * 16 bits per sample are kept (``uint16``, ``bit_depth == 16``) for grey (I;16, I;16B),
      grey+alpha, RGB and RGBA PNGs and for grey, RGB and RGBA TIFFs.  Pillow only decodes RGB
      and RGBA at 16 bits into 8-bit images, so those are decoded twice, once for the high
      and once for the low byte of each sample, and the two are combined exactly.  Other
      16-bit sources (16-bit CMYK, premultiplied 16-bit alpha, planar 16-bit TIFF, 16-bit
      AVIF) come in at 8 bits.  Grey is always expanded to three equal channels.
    * 32-bit integer images are accepted when all values lie in 0..65535 (as 16-bit);
      floating-point images (mode F, e.g. float TIFFs) are refused: their value range is not
      defined, and guessing it would change the picture.
    * An ICC profile is returned only when it describes RGB data (a grey profile no longer
      applies once grey is expanded to RGB; a CMYK profile no longer applies after
      conversion); ``None`` means "assume sRGB".
    * Problems with the file give :class:`ImageError` with a single line naming the file:
      missing, a directory, not a regular file (FIFOs and devices are refused by ``os.stat``
      before opening, and the file is opened non-blocking), unreadable, empty, not an image,
      unsupported format, truncated or corrupt (the whole image is decoded before returning),
      more than ``max_pixels`` pixels (refused from the header, before decoding) or too large
      for Pillow's own decompression-bomb limit (about 179 megapixels, whatever
      ``max_pixels`` says).  Animated images are read as their first frame
      (:attr:`LoadedImage.frames` says how many there are).

Writing (:func:`save_image`)
    * The format follows the extension (:func:`output_format_for`): ``.jpg``/``.jpeg``/``.jpe``
      (JPEG, quality 95 by default, 4:4:4 chroma so that the cloak is not smoothed away),
      ``.png``, ``.tif``/``.tiff``, ``.webp`` (always lossless: a lossy WebP would blur the
      cloak) and ``.bmp``.
    * 16-bit pixels stay 16-bit in PNG and TIFF (written by this module's own encoders, since
      Pillow cannot write 16-bit RGB); JPEG, WebP and BMP get 8 bits (rounded).
    * Alpha is kept in PNG, TIFF, WebP and BMP.  JPEG cannot hold it: a fully opaque alpha is
      dropped, any other alpha is refused (save as .png instead).
    * The ICC profile, when given, is embedded; nothing else is written: no EXIF, XMP, IPTC,
      text chunks, thumbnails or dates (JPEG keeps its structural JFIF header; TIFF has only
      the structural tags plus a 72 dpi resolution).
    * The file is written to a temporary file in the target folder, flushed to disk and then
      moved into place, so a reader never sees half a file; on any failure the temporary file
      is removed.  An existing output is never replaced unless ``overwrite=True``, and a path
      in ``protect`` (the inputs) is never replaced at all.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from facecloak.raw_formats import raw_format_name

__all__ = [
    "READ_FORMATS",
    "WRITE_EXTENSIONS",
    "ImageError",
    "LoadedImage",
    "load_image",
    "output_format_for",
    "save_image",
]


class ImageError(Exception):
    """One-line, user-facing error naming the file."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(_one_line(message))
        self.path = Path(path) if path is not None else None


@dataclass
class LoadedImage:
    """A decoded image, ready for the cloak.

    ``pixels`` is H x W x C (C = 3 for RGB, 4 for RGBA), ``uint8`` or ``uint16``, with the
    EXIF orientation already applied.  ``frames`` is the number of frames in the source
    (only the first is decoded).
    """

    pixels: np.ndarray
    bit_depth: int
    icc_profile: bytes | None
    format: str
    source: Path
    frames: int = 1

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def rgb_float(self) -> np.ndarray:
        """H x W x 3 float32 in [0, 1] (alpha dropped)."""
        scale = 65535.0 if self.pixels.dtype == np.uint16 else 255.0
        out = self.pixels[:, :, :3].astype(np.float32)
        out *= np.float32(1.0 / scale)
        return out


# Pillow plug-ins that load_image lets Pillow use (its JPEG plug-in also opens MPO files).
READ_FORMATS: tuple[str, ...] = (
    "JPEG",
    "PNG",
    "TIFF",
    "WEBP",
    "BMP",
    "GIF",
    "PPM",
    "AVIF",
)

WRITE_EXTENSIONS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}

_ORIENTATION_TAG = 0x0112
_TIFF_NEW_SUBFILE_TYPE = 254
_TIFF_DNG_VERSION = 50706


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _display(path: str | os.PathLike[str]) -> str:
    name = os.fsdecode(path)
    return "".join(ch if ch.isprintable() else "?" for ch in name)


def _fail(path: str | os.PathLike[str], reason: str) -> ImageError:
    return ImageError(f"{_display(path)}: {reason}", path=path)


def _exc_reason(exc: BaseException) -> str:
    text = _one_line(str(exc))
    if len(text) > 160:
        text = text[:157] + "..."
    return text or type(exc).__name__


# --------------------------------------------------------------------------- reading


def load_image(path: str | os.PathLike[str], max_pixels: int = 100_000_000) -> LoadedImage:
    """Read an image file; see the module documentation for what is supported."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise _fail(p, "file not found") from None
    except NotADirectoryError:
        raise _fail(p, "file not found (a folder in the path is a file)") from None
    except PermissionError:
        raise _fail(p, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise _fail(p, f"cannot access the file ({_exc_reason(exc)})") from None
    _check_regular(p, st)
    if st.st_size == 0:
        raise _fail(p, "the file is empty")

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except PermissionError:
        raise _fail(p, "permission denied (cannot read the file)") from None
    except OSError as exc:
        raise _fail(p, f"cannot open the file ({_exc_reason(exc)})") from None
    with os.fdopen(fd, "rb") as fh:
        try:
            _check_regular(p, os.fstat(fh.fileno()))  # it may have been swapped since stat
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
                return _decode(fh, p, max_pixels)
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise _fail(p, f"image is too large to decode safely ({_exc_reason(exc)})") from exc
        except MemoryError as exc:
            raise _fail(p, "not enough memory to decode the image") from exc
        except Exception as exc:
            raise _fail(p, f"corrupt or truncated image ({_exc_reason(exc)})") from exc


def _check_regular(p: Path, st: os.stat_result) -> None:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise _fail(p, "is a folder, not an image file")
    if not stat.S_ISREG(mode):
        if stat.S_ISFIFO(mode):
            kind = "a named pipe (FIFO)"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a device"
        elif stat.S_ISSOCK(mode):
            kind = "a socket"
        else:
            kind = "a special file"
        raise _fail(p, f"is {kind}, not a regular file")


def _sniff_supported(head: bytes) -> str | None:
    """Name a supported format whose signature starts the file."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return None if head[8:10] == b"CR" else "TIFF"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _sniff_unsupported(head: bytes) -> str | None:
    """Name a known but unsupported format from the first bytes of a file."""
    if head.startswith(b"8BPS"):
        return "Photoshop PSD"
    if head.startswith(b"%PDF"):
        return "PDF"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "PostScript/EPS"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JPEG XL"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if head.startswith(b"BPG\xfb"):
        return "BPG"
    if head.startswith(b"qoif"):
        return "QOI"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIC/HEIF"
        if brand in (b"avif", b"avis"):
            return "AVIF (this Pillow has no AVIF decoder)"
        if brand == b"crx ":
            return "Canon CR3 raw"
        return "ISO media (video or HEIF)"
    raw = raw_format_name(head)
    if raw:
        return raw
    lowered = head[:512].lower()
    if b"<svg" in lowered:
        return "SVG"
    if lowered.lstrip().startswith((b"<?xml", b"<x:xmpmeta", b"<?xpacket")):
        return "XML/XMP (not an image)"
    return None


Image.init()
_OPEN_FORMATS = [name for name in READ_FORMATS if name in Image.OPEN]
_SUPPORTED_TEXT = "JPEG, PNG, TIFF, WebP, BMP, GIF, PPM" + (
    ", AVIF" if "AVIF" in _OPEN_FORMATS else ""
)


def _decode(fh: io.BufferedReader, p: Path, max_pixels: int) -> LoadedImage:
    head = fh.read(512)
    fh.seek(0)
    try:
        img = Image.open(fh, formats=_OPEN_FORMATS)
    except UnidentifiedImageError:
        damaged = _sniff_supported(head)
        if damaged:
            raise _fail(p, f"corrupt {damaged} file (its header cannot be read)") from None
        known = _sniff_unsupported(head)
        if known:
            raise _fail(p, f"unsupported format: {known} (supported: {_SUPPORTED_TEXT})") from None
        raise _fail(
            p, f"not an image, or an unsupported format (supported: {_SUPPORTED_TEXT})"
        ) from None
    with img:
        fmt = img.format or "unknown"
        width, height = img.size
        if width <= 0 or height <= 0:
            raise _fail(p, f"invalid image size {width}x{height}")
        if width * height > max_pixels:
            raise _fail(
                p,
                f"image is too large: {width}x{height} = {width * height:,} pixels "
                f"(limit {max_pixels:,})",
            )
        if fmt == "TIFF":
            tags = img.tag_v2
            if head[8:10] == b"CR":
                raise _fail(p, "unsupported format: Canon CR2 raw (export it to JPEG, PNG or TIFF)")
            if _TIFF_DNG_VERSION in tags:
                raise _fail(p, "unsupported format: DNG raw (export it to JPEG, PNG or TIFF)")
            try:
                subfile = int(tags.get(_TIFF_NEW_SUBFILE_TYPE, 0))
            except (TypeError, ValueError):
                subfile = 0
            if subfile & 1:
                raise _fail(
                    p,
                    "its first image is a reduced-resolution preview (a camera raw file?); "
                    "export it to JPEG, PNG or TIFF",
                )

        frames = 1
        with contextlib.suppress(Exception):
            frames = max(1, int(getattr(img, "n_frames", 1)))
        if frames > 1:
            img.seek(0)

        swapped = _swapped_tiles(img)
        img.load()
        if swapped is not None:
            pixels, bit_depth = _decode_16bit_pair(img, fh, fmt, swapped, p)
            rgb_source = True
        else:
            pixels, bit_depth, rgb_source = _to_array(img, p)

        icc = img.info.get("icc_profile")
        if not isinstance(icc, (bytes, bytearray)) or len(icc) < 128:
            icc = None
        elif not rgb_source or bytes(icc[16:20]) != b"RGB ":
            icc = None  # a grey or CMYK profile does not describe the RGB pixels we return
        else:
            icc = bytes(icc)

        orientation = 1
        with contextlib.suppress(Exception):
            orientation = int(img.getexif().get(_ORIENTATION_TAG, 1))

    pixels = _apply_orientation(pixels, orientation)
    if fmt == "MPO":
        fmt = "JPEG"
    return LoadedImage(
        pixels=np.ascontiguousarray(pixels),
        bit_depth=bit_depth,
        icc_profile=icc,
        format=fmt,
        source=p,
        frames=frames,
    )


# Pillow decodes 16-bit RGB(A) into 8-bit images by keeping the high byte of each sample.
# Decoding the same data as if it had the opposite byte order keeps the low byte instead;
# filtering (PNG), prediction and decompression (TIFF) are the same either way.
_NATIVE_OTHER = "B" if sys.byteorder == "little" else "L"
_RAWMODE_SWAP = {}
for _base in ("RGB", "RGBA", "RGBX"):
    _RAWMODE_SWAP[f"{_base};16B"] = f"{_base};16L"
    _RAWMODE_SWAP[f"{_base};16L"] = f"{_base};16B"
    _RAWMODE_SWAP[f"{_base};16N"] = f"{_base};16{_NATIVE_OTHER}"
_LA16 = "LA;16B"  # PNG grey+alpha at 16 bits: decoded as one big-endian 32-bit word instead


def _tile_rawmode(args: object) -> str | None:
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(args: object, rawmode: str) -> object:
    if isinstance(args, str):
        return rawmode
    assert isinstance(args, tuple)
    return (rawmode, *args[1:])


def _swapped_tiles(img: Image.Image) -> list | None:
    """Tiles that decode the low bytes of a 16-bit RGB(A) image, or None if not one."""
    tiles = list(getattr(img, "tile", None) or [])
    if not tiles or img.mode not in ("RGB", "RGBA"):
        return None
    out = []
    for tile in tiles:
        if tile[0] not in ("zip", "raw", "libtiff"):
            return None
        raw = _tile_rawmode(tile[3])
        if raw == _LA16 and img.format == "PNG":
            out.append(_tile_with_args(tile, _with_rawmode(tile[3], "I;32B")))
        elif raw in _RAWMODE_SWAP:
            out.append(_tile_with_args(tile, _with_rawmode(tile[3], _RAWMODE_SWAP[raw])))
        else:
            return None
    return out


def _tile_with_args(tile, args: object):
    if hasattr(tile, "_replace"):  # Pillow >= 11: a named tuple
        return tile._replace(args=args)
    return (tile[0], tile[1], tile[2], args, *tile[4:])


def _decode_16bit_pair(
    first: Image.Image, fh: io.BufferedReader, fmt: str, tiles: list, p: Path
) -> tuple[np.ndarray, int]:
    hi = np.asarray(first)
    fh.seek(0)
    second = Image.open(fh, formats=[fmt])
    with second:
        if second.size != first.size or second.mode != first.mode:
            raise _fail(p, "inconsistent image data")
        grey_alpha = _tile_rawmode(tiles[0][3]) == "I;32B"
        if grey_alpha:
            second._mode = "I"  # one 32-bit word per pixel: grey (high half), alpha (low half)
        second.tile = tiles
        second.load()
        if grey_alpha:
            words = np.asarray(second).astype(np.int64) & 0xFFFFFFFF
            grey = (words >> 16).astype(np.uint16)
            alpha = (words & 0xFFFF).astype(np.uint16)
            if not np.array_equal(grey >> 8, hi[:, :, 0]):
                raise _fail(p, "inconsistent 16-bit image data")
            return np.stack([grey, grey, grey, alpha], axis=2), 16
        lo = np.asarray(second)
    if lo.shape != hi.shape:
        raise _fail(p, "inconsistent 16-bit image data")
    pixels = (hi.astype(np.uint16) << 8) | lo.astype(np.uint16)
    return pixels, 16


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _to_array(img: Image.Image, p: Path) -> tuple[np.ndarray, int, bool]:
    """(pixels, bit depth, whether the pixels are the source's own RGB values)."""
    mode = img.mode
    transparent = bool(getattr(img, "has_transparency_data", False))
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        grey = np.asarray(img).astype(np.uint16)
        return _grey_to_rgb(grey), 16, False
    if mode == "I":
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise _fail(p, "unsupported 32-bit integer image (values outside 0..65535)")
        return _grey_to_rgb(values.astype(np.uint16)), 16, False
    if mode == "F":
        raise _fail(
            p, "floating-point images are not supported (convert to 8- or 16-bit integer first)"
        )
    if mode in ("1", "L"):
        if transparent:
            return np.asarray(img.convert("RGBA")), 8, False
        return _grey_to_rgb(np.asarray(img.convert("L"))), 8, False
    if mode in ("LA", "La"):
        return np.asarray(img.convert("RGBA")), 8, False
    if mode in ("P", "PA"):
        target = "RGBA" if (mode == "PA" or transparent) else "RGB"
        return np.asarray(img.convert(target)), 8, True
    if mode == "RGB":
        if transparent:
            return np.asarray(img.convert("RGBA")), 8, True
        return np.asarray(img), 8, True
    if mode == "RGBA":
        return np.asarray(img), 8, True
    if mode == "RGBX":
        return np.asarray(img.convert("RGB")), 8, True
    if mode == "RGBa":
        return np.asarray(img.convert("RGBA")), 8, True
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(img)), 8, False
    if mode in ("YCbCr", "HSV"):
        return np.asarray(img.convert("RGB")), 8, False
    if mode == "LAB":
        try:
            from PIL import ImageCms

            rgb = ImageCms.profileToProfile(
                img, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except Exception:
            raise _fail(p, "unsupported colour mode LAB") from None
        return np.asarray(rgb), 8, False
    raise _fail(p, f"unsupported colour mode {mode}")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(
                img, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if out is not None:
                return out
        except Exception:
            pass
    return img.convert("RGB")


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Bake EXIF orientation 1-8 into an H x W x C array (other values: unchanged)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return pixels[::-1].transpose(1, 0, 2)
    if orientation == 7:
        return pixels[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return pixels[:, ::-1].transpose(1, 0, 2)
    return pixels


# --------------------------------------------------------------------------- writing


def output_format_for(path: str | os.PathLike[str]) -> str:
    """The Pillow format name that :func:`save_image` writes for this path's extension."""
    suffix = Path(path).suffix.lower()
    fmt = WRITE_EXTENSIONS.get(suffix)
    if fmt is None:
        wanted = ", ".join(sorted(WRITE_EXTENSIONS))
        what = f"extension {suffix!r}" if suffix else "no extension"
        raise _fail(path, f"cannot write an image with {what} (use one of {wanted})")
    return fmt


def save_image(
    pixels: np.ndarray,
    path: str | os.PathLike[str],
    *,
    icc_profile: bytes | None = None,
    jpeg_quality: int = 95,
    overwrite: bool = False,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write pixels to ``path`` atomically; see the module documentation. Returns the path."""
    dest = Path(path)
    fmt = output_format_for(dest)
    arr = _check_pixels(pixels, dest)
    if icc_profile is not None:
        if not isinstance(icc_profile, (bytes, bytearray)) or len(icc_profile) < 128:
            raise _fail(dest, "the ICC profile is not valid (too short)")
        if bytes(icc_profile[16:20]) != b"RGB ":
            space = bytes(icc_profile[16:20]).decode("latin-1").strip()
            raise _fail(dest, f"the ICC profile is for {space!r} data, not RGB")
        icc_profile = bytes(icc_profile)
    if not 1 <= int(jpeg_quality) <= 100:
        raise _fail(dest, f"JPEG quality must be 1-100, not {jpeg_quality}")

    folder = dest.parent
    if not folder.is_dir():
        raise _fail(dest, f"the output folder {_display(folder)} does not exist")
    _check_destination(dest, overwrite=overwrite, protect=protect)

    if fmt == "JPEG" and arr.shape[2] == 4:
        alpha = arr[:, :, 3]
        full = 65535 if arr.dtype == np.uint16 else 255
        if not np.all(alpha == full):
            raise _fail(dest, "JPEG cannot store transparency; save as .png (or .tif/.webp)")
        arr = arr[:, :, :3]

    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".facecloak-", suffix=".tmp")
    except OSError as exc:
        raise _fail(
            dest, f"cannot create a file in the output folder ({_exc_reason(exc)})"
        ) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            _encode(arr, fh, fmt, icc_profile, int(jpeg_quality))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError, NotImplementedError):
            os.chmod(tmp, 0o666 & ~_umask())
        _check_destination(dest, overwrite=overwrite, protect=protect)
        _move_into_place(tmp, dest, overwrite=overwrite)
        _fsync_dir(folder)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, ImageError):
            raise
        if isinstance(exc, Exception):
            raise _fail(dest, f"cannot write the image ({_exc_reason(exc)})") from exc
        raise
    return dest


def _check_pixels(pixels: object, dest: Path) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise _fail(dest, f"pixels must be a numpy array, not {type(pixels).__name__}")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise _fail(dest, f"pixels must be uint8 or uint16, not {pixels.dtype}")
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise _fail(dest, f"pixels must be H x W x 3 or H x W x 4, not {pixels.shape}")
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise _fail(dest, f"cannot write an empty image {pixels.shape}")
    return np.ascontiguousarray(pixels)


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        if os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b):
            return True
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        if a.resolve() == b.resolve():
            return True
    with contextlib.suppress(OSError, ValueError):
        return os.path.abspath(a) == os.path.abspath(b)
    return False


def _check_destination(
    dest: Path, *, overwrite: bool, protect: Iterable[str | os.PathLike[str]]
) -> None:
    for item in protect:
        if _same_file(dest, Path(item)):
            raise _fail(dest, "refusing to write over an input file; choose another output name")
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _fail(dest, f"cannot check the output path ({_exc_reason(exc)})") from None
    if stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and dest.is_dir()):
        raise _fail(dest, "the output path is a folder")
    if not overwrite:
        raise _fail(dest, _EXISTS)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise _fail(dest, "the output path exists and is not a regular file")


_EXISTS = "the output file already exists (allow overwriting to replace it)"


def _move_into_place(tmp: Path, dest: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    # Without overwrite: a hard link fails if something appeared at dest in the meantime.
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise _fail(
            dest, "the output file already exists (allow overwriting to replace it)"
        ) from None
    except OSError:
        if os.path.lexists(dest):  # the file system has no hard links: check, then rename
            raise _fail(
                dest, "the output file already exists (allow overwriting to replace it)"
            ) from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _umask() -> int:
    status = Path("/proc/self/status")
    with contextlib.suppress(OSError, ValueError), status.open(encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _encode(arr: np.ndarray, fh, fmt: str, icc: bytes | None, quality: int) -> None:
    if fmt == "PNG" and arr.dtype == np.uint16:
        _write_png16(arr, fh, icc)
        return
    if fmt == "TIFF":
        _write_tiff(arr, fh, icc)
        return
    img = Image.fromarray(np.ascontiguousarray(_to_8bit(arr)))
    options: dict[str, object] = {}
    if icc is not None:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=0, optimize=True)
    elif fmt == "PNG":
        options.update(compress_level=6)
    elif fmt == "WEBP":
        options.update(lossless=True, exact=True, quality=80, method=4)
    img.save(fh, format=fmt, **options)


def _png_chunk(fh, kind: bytes, data: bytes) -> None:
    fh.write(struct.pack(">I", len(data)) + kind + data)
    fh.write(struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


_DEFLATE_LEVEL = 3  # own PNG/TIFF encoders; level 6 was ~1% smaller and ~40% slower


def _parallel_map(fn, items: list) -> Iterable:
    """map() over threads (zlib and numpy release the GIL), results in order."""
    workers = min(8, os.cpu_count() or 1, len(items))
    if workers <= 1:
        return map(fn, items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _png_paeth_rows(rows: np.ndarray, prev: np.ndarray, bpp: int) -> bytes:
    """PNG scanlines (uint8, n x L) filtered with Paeth; each row starts with its filter byte."""
    n, length = rows.shape
    cur = rows.astype(np.int16)
    up = np.empty_like(cur)
    up[0] = prev
    up[1:] = cur[:-1]
    left = np.zeros_like(cur)
    left[:, bpp:] = cur[:, :-bpp]
    upleft = np.zeros_like(cur)
    upleft[:, bpp:] = up[:, :-bpp]
    pa = np.abs(up - upleft)
    pb = np.abs(left - upleft)
    pc = np.abs(left + up - 2 * upleft)
    predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    out = np.empty((n, length + 1), dtype=np.uint8)
    out[:, 0] = 4
    out[:, 1:] = (cur - predicted).astype(np.uint8)
    return out.tobytes()


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    base = 65521
    rem = len2 % base
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % base
    sum1 = (sum1 + (adler2 & 0xFFFF) + base - 1) % base
    sum2 = (sum2 + (adler1 >> 16) + (adler2 >> 16) + base - rem) % base
    return sum1 | (sum2 << 16)


def _write_png16(arr: np.ndarray, fh, icc: bytes | None) -> None:
    """16-bit RGB(A) PNG: Paeth filter, deflate in independent 1 MB blocks (in parallel)."""
    height, width, channels = arr.shape
    if width >= 2**31 or height >= 2**31:
        raise ValueError("image too large for PNG")
    colour_type = 6 if channels == 4 else 2
    fh.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
    if icc is not None:
        _png_chunk(fh, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc, 9))
    bpp = channels * 2
    rows = arr.astype(">u2").reshape(height, width * channels).view(np.uint8)
    block = max(1, (1 << 20) // rows.shape[1])
    starts = list(range(0, height, block))

    def deflate_block(top: int) -> tuple[bytes, int, int]:
        prev = rows[top - 1] if top else np.zeros(rows.shape[1], dtype=np.uint8)
        data = _png_paeth_rows(rows[top : top + block], prev.astype(np.int16), bpp)
        comp = zlib.compressobj(_DEFLATE_LEVEL, zlib.DEFLATED, -15)
        last = top + block >= height
        out = comp.compress(data) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
        return out, zlib.adler32(data), len(data)

    # Raw deflate pieces ending on a sync flush join into one valid stream (as pigz does).
    stream = bytearray(b"\x78\x5e")
    checksum = 1
    for piece, adler, size in _parallel_map(deflate_block, starts):
        stream += piece
        checksum = _adler32_combine(checksum, adler, size)
        while len(stream) >= 1 << 20:
            _png_chunk(fh, b"IDAT", bytes(stream[: 1 << 20]))
            del stream[: 1 << 20]
    stream += struct.pack(">I", checksum)
    for pos in range(0, len(stream), 1 << 20):
        _png_chunk(fh, b"IDAT", bytes(stream[pos : pos + (1 << 20)]))
    _png_chunk(fh, b"IEND", b"")


_TIFF_SHORT, _TIFF_LONG, _TIFF_RATIONAL, _TIFF_UNDEFINED = 3, 4, 5, 7


def _write_tiff(arr: np.ndarray, fh, icc: bytes | None) -> None:
    """Little-endian baseline TIFF, Adobe Deflate with horizontal prediction, one IFD."""
    height, width, channels = arr.shape
    bits = 16 if arr.dtype == np.uint16 else 8
    sample = np.dtype("<u2") if bits == 16 else np.dtype(np.uint8)
    row_bytes = width * channels * sample.itemsize
    rows_per_strip = max(1, min(height, (1 << 20) // row_bytes))

    start = fh.tell()
    fh.write(b"II*\x00\x00\x00\x00\x00")  # IFD offset patched at the end
    offsets: list[int] = []
    counts: list[int] = []

    def deflate_strip(top: int) -> bytes:
        strip = arr[top : top + rows_per_strip]
        delta = strip.copy()
        delta[:, 1:] -= strip[:, :-1]  # horizontal differencing, wraps like the predictor
        return zlib.compress(delta.astype(sample, copy=False).tobytes(), _DEFLATE_LEVEL)

    for data in _parallel_map(deflate_strip, list(range(0, height, rows_per_strip))):
        offsets.append(fh.tell() - start)
        counts.append(len(data))
        fh.write(data)
        if fh.tell() & 1:
            fh.write(b"\x00")

    def shorts(*values: int) -> tuple[int, int, bytes]:
        return _TIFF_SHORT, len(values), struct.pack(f"<{len(values)}H", *values)

    def longs(*values: int) -> tuple[int, int, bytes]:
        return _TIFF_LONG, len(values), struct.pack(f"<{len(values)}I", *values)

    entries: dict[int, tuple[int, int, bytes]] = {
        256: longs(width),
        257: longs(height),
        258: shorts(*([bits] * channels)),
        259: shorts(8),  # Adobe Deflate
        262: shorts(2),  # RGB
        273: longs(*offsets),
        277: shorts(channels),
        278: longs(rows_per_strip),
        279: longs(*counts),
        282: (_TIFF_RATIONAL, 1, struct.pack("<II", 72, 1)),
        283: (_TIFF_RATIONAL, 1, struct.pack("<II", 72, 1)),
        284: shorts(1),  # chunky
        296: shorts(2),  # inches
        317: shorts(2),  # horizontal predictor
        339: shorts(*([1] * channels)),  # unsigned integers
    }
    if channels == 4:
        entries[338] = shorts(2)  # unassociated alpha
    if icc is not None:
        entries[34675] = (_TIFF_UNDEFINED, len(icc), icc)

    inline: dict[int, bytes] = {}
    for tag, (_kind, _count, payload) in sorted(entries.items()):
        if len(payload) <= 4:
            inline[tag] = payload.ljust(4, b"\x00")
        else:
            inline[tag] = struct.pack("<I", fh.tell() - start)
            fh.write(payload)
            if fh.tell() & 1:
                fh.write(b"\x00")
    ifd_offset = fh.tell() - start
    if ifd_offset + 6 + 12 * len(entries) >= 2**32:
        raise ValueError("image too large for TIFF (over 4 GB)")
    ifd = bytearray(struct.pack("<H", len(entries)))
    for tag, (kind, count, _payload) in sorted(entries.items()):
        ifd += struct.pack("<HHI", tag, kind, count) + inline[tag]
    ifd += b"\x00\x00\x00\x00"
    fh.write(ifd)
    end = fh.tell()
    fh.seek(start + 4)
    fh.write(struct.pack("<I", ifd_offset))
    fh.seek(end)


# Keep Pillow strict: a truncated image must fail to load rather than come back padded.
if ImageFile.LOAD_TRUNCATED_IMAGES:  # pragma: no cover - only if someone changed the default
    warnings.warn(
        "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images will not be detected",
        RuntimeWarning,
        stacklevel=1,
    )
