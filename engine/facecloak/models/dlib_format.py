"""A reader for dlib's binary serialisation (``dlib/serialize.h``), enough to load DNN weights.

dlib writes its objects as a flat byte stream with no field names:

* integers: one control byte, whose low four bits give the number of value bytes and whose bit
  ``0x80`` marks a negative number, then the magnitude in that many little-endian bytes;
* floating-point numbers: a mantissa (``int64``) and a power-of-two exponent (``int16``), each an
  integer as above; three reserved exponents stand for ``inf``, ``-inf`` and ``nan``;
* booleans: one ASCII byte, ``'1'`` or ``'0'``;
* strings: the length as an integer, then the raw bytes;
* DNN tensors: a version, four dimensions (samples, channels, rows, columns), then the values
  (version 2: raw little-endian ``float32``; version 1: one serialised float each);
* alias tensors (views into a layer's parameter tensor): a version and four dimensions.

Every read checks bounds and raises :class:`ValueError` on a truncated or corrupt stream.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# dlib's float_details marks non-finite values with these exponents.
_EXP_INF = 32000
_EXP_NINF = 32001
_EXP_NAN = 32002

# Sanity bound on tensor sizes read from a file (far above any face model), so a corrupt
# dimension cannot ask for gigabytes.
_MAX_TENSOR_ELEMENTS = 1 << 28


class DlibReader:
    """Sequential reader over one dlib-serialised byte stream."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> DlibReader:
        """Read a whole file into memory and return a reader positioned at its start."""
        return cls(Path(path).read_bytes(), str(path))

    # -- helpers -------------------------------------------------------------------------------

    def error(self, what: str) -> ValueError:
        """A ValueError naming the file, the problem and the byte offset (to raise)."""
        return ValueError(
            f"corrupt or truncated dlib file {self.source}: {what} at byte {self.pos}"
        )

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"unexpected end of data reading {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    # -- scalars -------------------------------------------------------------------------------

    def read_int(self, max_bytes: int = 8, signed: bool = True, what: str = "integer") -> int:
        """An integer of a C++ type ``max_bytes`` wide (``signed=False`` rejects negatives)."""
        control = self._take(1, what)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        if size == 0 or size > max_bytes or control & 0x70:
            self.pos -= 1
            raise self.error(f"bad control byte 0x{control:02x} for {what}")
        if negative and not signed:
            self.pos -= 1
            raise self.error(f"negative value for unsigned {what}")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if negative else value

    def read_uint(self, max_bytes: int = 8, what: str = "unsigned integer") -> int:
        """A non-negative integer."""
        return self.read_int(max_bytes=max_bytes, signed=False, what=what)

    def read_bool(self, what: str = "bool") -> bool:
        """A boolean, stored as the ASCII byte ``'1'`` or ``'0'``."""
        byte = self._take(1, what)[0]
        if byte not in (0x30, 0x31):
            self.pos -= 1
            raise self.error(f"bad byte 0x{byte:02x} for {what}")
        return byte == 0x31

    def read_float(self, what: str = "float") -> float:
        """A float or double (mantissa and binary exponent; dlib's pre-2013 ASCII form is
        not supported)."""
        if self.remaining and self.data[self.pos] & 0x70:
            raise self.error(f"unsupported (old ASCII) encoding for {what}")
        mantissa = self.read_int(8, what=f"{what} mantissa")
        exponent = self.read_int(2, what=f"{what} exponent")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def read_string(self, what: str = "string", max_len: int = 1 << 16) -> str:
        """A length-prefixed string (the names dlib writes are ASCII)."""
        n = self.read_uint(what=f"{what} length")
        if n > max_len:
            raise self.error(f"implausible length {n} for {what}")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"non-ASCII bytes in {what}") from None

    def expect_string(self, *allowed: str) -> str:
        """Read a string and check it is one of ``allowed``."""
        start = self.pos
        s = self.read_string(what="type tag")
        if s not in allowed:
            self.pos = start
            raise self.error(f"expected {' or '.join(map(repr, allowed))}, found {s!r}")
        return s

    # -- tensors -------------------------------------------------------------------------------

    def _dims(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.read_uint(what=f"{what} dimension") for _ in range(4))
        return dims  # type: ignore[return-value]

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A ``dlib::tensor`` as a float32 array of shape ``(samples, channels, rows, cols)``."""
        version = self.read_int(what=f"{what} version")
        if version not in (1, 2):
            raise self.error(f"unknown {what} version {version}")
        dims = self._dims(what)
        count = math.prod(dims)
        if count > _MAX_TENSOR_ELEMENTS:
            raise self.error(f"implausible {what} size {dims}")
        if version == 2:
            raw = self._take(4 * count, what)
            values = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        else:
            values = np.array([self.read_float(what) for _ in range(count)], dtype=np.float32)
        return values.reshape(dims)

    def read_alias_tensor(self, what: str = "alias tensor") -> tuple[int, int, int, int]:
        """The shape of a ``dlib::alias_tensor`` (a view; it holds no values)."""
        version = self.read_int(what=f"{what} version")
        if version != 1:
            raise self.error(f"unknown {what} version {version}")
        return self._dims(what)
