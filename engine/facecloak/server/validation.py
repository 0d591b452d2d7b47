"""Requests checked before the server acts on them: fields, types, sizes and paths.

Anything not understood is refused with a one-line reason: unknown operations, fields, options
or protocol versions. Paths must be absolute and free of ``..``; inputs must be regular files;
outputs go into an existing folder and never over the input (unless a scrub says in place).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facecloak_bridge.shm import file_kind
from facecloak_bridge.wire import PROTOCOL_VERSION

from facecloak.budget import MODES, CloakBudget, budget_for
from facecloak.imageio import WRITE_EXTENSIONS


class RequestError(Exception):
    """A refused request: ``code`` for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; checked before any payload byte is read."""

    max_pixels: int = 100_000_000
    max_payload_bytes: int = 1 << 30
    max_path: int = 4096


@dataclass(frozen=True)
class CloakOptions:
    budget: CloakBudget
    seed: int = 0
    jpeg_quality: int = 95


@dataclass
class Request:
    """A checked request; ``args`` holds the operation's fields, converted."""

    op: str
    id: Any = None
    args: dict[str, Any] = field(default_factory=dict)
    payload_size: int = 0


Check = Callable[[str, Any], Any]
COMMON = {"v", "id", "op", "token"}


def _fail(message: str, code: str = "bad_request") -> RequestError:
    return RequestError(code, message)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"{name} must be true or false")
    return value


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{name} must be an integer")
    if not low <= value <= high:
        raise _fail(f"{name} must be between {low} and {high}, not {value}")
    return value


def _text(name: str, value: Any, longest: int = 64) -> str:
    if not isinstance(value, str) or not value or len(value) > longest:
        raise _fail(f"{name} must be a non-empty string of at most {longest} characters")
    return value


def _path(name: str, value: Any, limits: Limits) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(f"{name} must be a path (a non-empty string)", "bad_path")
    if len(value) > limits.max_path or "\x00" in value:
        raise _fail(f"{name} is not a usable path", "bad_path")
    if not os.path.isabs(value):
        raise _fail(f"{name} must be an absolute path, not {value!r}", "bad_path")
    if ".." in value.split(os.sep):
        raise _fail(f"{name} must not contain '..' ({value!r})", "bad_path")
    return value


def check_input(path: str) -> os.stat_result:
    """The input must exist and be a regular file (links are followed to one)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise _fail(f"{path}: file not found", "bad_path") from None
    except OSError as error:
        raise _fail(f"{path}: {error.strerror or error}", "bad_path") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(f"{path}: is {file_kind(info.st_mode)}, not a regular file", "bad_path")
    return info


def check_output(path: str, overwrite: bool, source: os.stat_result | None) -> None:
    """The output's folder must exist; an existing output must be a file we may replace."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise _fail(f"{path}: the output folder does not exist", "bad_path")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise _fail(f"{path}: {error.strerror or error}", "bad_path") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(f"{path}: is {file_kind(info.st_mode)}, not a file to write", "bad_path")
    if source is not None and (info.st_dev, info.st_ino) == (source.st_dev, source.st_ino):
        raise _fail(f"{path}: refusing to write over the input file", "bad_path")
    if not overwrite:
        raise _fail(f"{path}: the output file already exists (ask to overwrite)", "exists")


_NUMBERS: dict[str, tuple[type, float, float]] = {
    "steps": (int, 1, 10_000),
    "samples": (int, 1, 64),
    "extra_steps": (int, 0, 10_000),
    "dssim": (float, 1e-6, 0.5),
    "region_dssim": (float, 1e-6, 0.5),
    "photo_dssim": (float, 1e-6, 0.5),
    "photo_faces": (int, 1, 100_000),
    "max_change": (float, 1e-3, 255.0),
}


def cloak_options(value: Any) -> CloakOptions:
    """Mode, seed, JPEG quality and the expert overrides, as ``facecloak cloak`` takes them."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _fail("options must be an object")
    unknown = set(value) - {"mode", "seed", "jpeg_quality", *_NUMBERS}
    if unknown:
        raise _fail(f"unknown option(s): {', '.join(sorted(unknown))}")
    mode = value.get("mode", "mid")
    if mode not in MODES:
        raise _fail(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    overrides: dict[str, float | int] = {}
    for name, (kind, low, high) in _NUMBERS.items():
        if name not in value:
            continue
        number = value[name]
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or (kind is int and not isinstance(number, int)) or not low <= number <= high:
            raise _fail(f"option {name} must be a {kind.__name__} between {low:g} and {high:g}")
        overrides[name] = number / 255.0 if name == "max_change" else number
    return CloakOptions(
        budget=budget_for(mode).with_overrides(**overrides),
        seed=_int("seed", value.get("seed", 0), -(2**63), 2**63 - 1),
        jpeg_quality=_int("jpeg_quality", value.get("jpeg_quality", 95), 1, 100),
    )


def _fields(header: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = set(header) - COMMON - allowed
    if unknown:
        raise _fail(f"unknown field(s) for {header['op']}: {', '.join(sorted(unknown))}")
    missing = required - set(header)
    if missing:
        raise _fail(f"missing field(s) for {header['op']}: {', '.join(sorted(missing))}")


def _cloak_file(header: dict[str, Any], limits: Limits) -> dict[str, Any]:
    _fields(header, {"input", "output", "overwrite", "options"}, {"input", "output"})
    source = _path("input", header["input"], limits)
    output = _path("output", header["output"], limits)
    overwrite = _bool("overwrite", header.get("overwrite", False))
    if os.path.splitext(output)[1].lower() not in WRITE_EXTENSIONS:
        raise _fail(
            f"{output}: cannot write this format (use {', '.join(WRITE_EXTENSIONS)})", "bad_path"
        )
    options = cloak_options(header.get("options"))
    check_output(output, overwrite, check_input(source))
    return {"input": source, "output": output, "overwrite": overwrite, "options": options}


def _scrub_file(header: dict[str, Any], limits: Limits) -> dict[str, Any]:
    _fields(header, {"input", "output", "overwrite", "in_place", "sidecars"}, {"input"})
    source = _path("input", header["input"], limits)
    in_place = _bool("in_place", header.get("in_place", False))
    overwrite = _bool("overwrite", header.get("overwrite", False))
    sidecars = _text("sidecars", header.get("sidecars", "report"), 32)
    info = check_input(source)
    if in_place:
        if header.get("output") not in (None, source):
            raise _fail("in_place scrubs the input itself: give no other output")
        output = source
    else:
        if "output" not in header:
            raise _fail("scrub_file needs an output unless in_place is true")
        output = _path("output", header["output"], limits)
        check_output(output, overwrite, info)
    return {
        "input": source,
        "output": output,
        "overwrite": overwrite,
        "in_place": in_place,
        "sidecars": sidecars,
    }


def _shm(value: Any) -> tuple[bool, bool]:
    """The ``shm`` field: which way the pixels go through a memory file instead of the payload."""
    if not isinstance(value, dict):
        raise _fail('shm must be an object such as {"input": true, "output": true}')
    unknown = set(value) - {"input", "output"}
    if unknown:
        raise _fail(f"unknown shm field(s): {', '.join(sorted(unknown))}")
    shm_input = _bool("shm input", value.get("input", False))
    return shm_input, _bool("shm output", value.get("output", False))


def _cloak_pixels(
    header: dict[str, Any], limits: Limits, size: int, fds: int, can_pass_fds: bool
) -> dict[str, Any]:
    names = {"width", "height", "channels", "bit_depth", "stride"}
    _fields(header, names | {"options", "shm"}, names)
    width = _int("width", header["width"], 1, 1 << 20)
    height = _int("height", header["height"], 1, 1 << 20)
    channels = _int("channels", header["channels"], 3, 4)
    bit_depth = header["bit_depth"]
    if bit_depth not in (8, 16) or isinstance(bit_depth, bool):
        raise _fail("bit_depth must be 8 or 16")
    if width * height > limits.max_pixels:
        raise _fail(
            f"image too large: {width}x{height} is over the limit of {limits.max_pixels:,} pixels",
            "too_large",
        )
    row = width * channels * bit_depth // 8
    stride = _int("stride", header["stride"], row, row + (1 << 16))
    shm_input, shm_output = _shm(header["shm"]) if "shm" in header else (False, False)
    if (shm_input or shm_output) and not can_pass_fds:
        raise _fail("shared memory (shm) needs the local Unix socket; send the pixels as payload")
    if shm_input:
        if size:
            raise _fail("with shm input the pixels are in the memory file: send no payload")
        if fds != 1:
            raise _fail(f"shm input takes one file descriptor (the memory file), not {fds}")
        if stride * height > limits.max_payload_bytes:
            raise _fail(
                f"pixels of {stride * height:,} bytes are over the limit of "
                f"{limits.max_payload_bytes:,}",
                "too_large",
            )
    elif fds:
        raise _fail(f"{fds} file descriptor(s) came without shm input")
    elif size != stride * height:
        raise _fail(f"payload is {size} bytes; stride x height is {stride * height}")
    return {
        "width": width,
        "height": height,
        "channels": channels,
        "bit_depth": bit_depth,
        "stride": stride,
        "options": cloak_options(header.get("options")),
        "shm_input": shm_input,
        "shm_output": shm_output,
    }


def _job(header: dict[str, Any], required: bool) -> dict[str, Any]:
    _fields(header, {"job"}, {"job"} if required else set())
    job = header.get("job")
    return {"job": None if job is None else _text("job", job)}


def parse_request(
    header: dict[str, Any],
    payload_size: int,
    limits: Limits,
    fds: int = 0,
    can_pass_fds: bool = False,
) -> Request:
    """Check one request header (the payload is still unread); :class:`RequestError` if bad.

    ``fds``: how many file descriptors came with the frame (only shm input takes one);
    ``can_pass_fds``: whether the connection can carry them (the Unix socket, not TCP).
    """
    request_id = header.get("id")
    if request_id is not None and not (
        (isinstance(request_id, int) and not isinstance(request_id, bool))
        or (isinstance(request_id, str) and len(request_id) <= 64)
    ):
        raise _fail("id must be an integer or a short string")
    version = header.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise _fail(
            f"protocol version {version!r} is not supported (this server speaks "
            f"{PROTOCOL_VERSION}); update the plug-in or the engine",
            "unsupported_version",
        )
    op = header.get("op")
    if payload_size > limits.max_payload_bytes:
        raise _fail(
            f"payload of {payload_size:,} bytes is over the limit of {limits.max_payload_bytes:,}",
            "too_large",
        )
    if op != "cloak_pixels" and payload_size:
        raise _fail(f"{op} takes no payload")
    if op != "cloak_pixels" and fds:
        raise _fail(f"{op} takes no file descriptors ({fds} came with it)")
    parsers: dict[str, Callable[[], dict[str, Any]]] = {
        "health": lambda: _fields(header, set(), set()) or {},
        "shutdown": lambda: _fields(header, set(), set()) or {},
        "progress": lambda: _job(header, required=True),
        "cancel": lambda: _job(header, required=False),
        "cloak_file": lambda: _cloak_file(header, limits),
        "scrub_file": lambda: _scrub_file(header, limits),
        "cloak_pixels": lambda: _cloak_pixels(header, limits, payload_size, fds, can_pass_fds),
    }
    if not isinstance(op, str) or op not in parsers:
        raise _fail(f"unknown operation {op!r} (known: {', '.join(sorted(parsers))})", "unknown_op")
    args = parsers[op]()
    if args.get("shm_input"):  # held in memory like a payload, and counted as one by the queue
        payload_size = args["stride"] * args["height"]
    return Request(op=op, id=request_id, args=args, payload_size=payload_size)
