"""Layer pixels to the engine and back, at the image's precision, touching only what changed.

The engine takes 8- or 16-bit gamma-encoded RGB(A). Images stored that way round-trip exactly.
Linear, 32-bit and floating-point images are sent as 16-bit and only the engine's change is
added back onto the original samples, so pixels the engine left alone stay bit-identical and
values outside 0..1 survive. Both GIMP versions plug in through :class:`Surface`.
"""

from __future__ import annotations

import array
from typing import Callable, NamedTuple, Tuple

# GimpPrecision values (the same numbers in GIMP 2.10 and 3): hundreds give the sample type,
# the rest the tone curve (00 linear, 50 gamma / non-linear, 75 perceptual).
_SAMPLE_TYPES = {1: "u8", 2: "u16", 3: "u32", 5: "half", 6: "float", 7: "double"}


class Rect(NamedTuple):
    """A rectangle in layer coordinates."""

    x: int
    y: int
    width: int
    height: int


class Span(NamedTuple):
    """Bytes ``start`` to ``end`` (exclusive) of row ``row`` differ after cloaking."""

    row: int
    start: int
    end: int


class Formats(NamedTuple):
    """Babl format names: what the engine gets, and what changes are merged in (if needed)."""

    transport: str
    bit_depth: int
    channels: int
    work: str | None  # None: transport is the layer's own encoding, written back as is


class Surface:
    """What the plug-ins provide: read a rectangle, write one into the shadow buffer."""

    def read(self, rect: Rect, babl_format: str) -> bytes:
        raise NotImplementedError

    def write(self, rect: Rect, babl_format: str, data: bytes) -> None:
        raise NotImplementedError


Engine = Callable[[bytes, int, int, int, int], Tuple[bytes, dict]]


def formats_for(precision: int, has_alpha: bool) -> Formats:
    """The transport (and, for precisions the engine does not take, the merge) formats."""
    sample = _SAMPLE_TYPES.get(precision // 100)
    if sample is None:
        raise ValueError(f"unknown image precision {precision}")
    model = "R'G'B'A" if has_alpha else "R'G'B'"
    channels = 4 if has_alpha else 3
    native = sample in ("u8", "u16") and precision % 100 == 50
    depth = 8 if sample == "u8" else 16
    transport = f"{model} u{depth}"
    return Formats(transport, depth, channels, None if native else f"{model} float")


def changed_spans(before: bytes, after: bytes, stride: int) -> list[Span]:
    """Per row, the first and last differing byte (big-integer XOR: fast in pure Python)."""
    if len(before) != len(after):
        raise ValueError("the engine returned a different number of bytes")
    spans = []
    view_a, view_b = memoryview(before), memoryview(after)
    for row in range(len(before) // stride):
        lo, hi = row * stride, (row + 1) * stride
        a, b = view_a[lo:hi], view_b[lo:hi]
        if a == b:
            continue
        diff = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
        first = stride - (diff.bit_length() + 7) // 8
        last = stride - ((diff & -diff).bit_length() - 1) // 8
        spans.append(Span(row, first, last))
    return spans


def bounds(spans: list[Span], rect: Rect, pixel_bytes: int) -> Rect | None:
    """The smallest rectangle (layer coordinates) holding every changed pixel."""
    if not spans:
        return None
    left = min(span.start for span in spans) // pixel_bytes
    right = -(-max(span.end for span in spans) // pixel_bytes)
    top, bottom = spans[0].row, spans[-1].row + 1
    return Rect(rect.x + left, rect.y + top, right - left, bottom - top)


class Outcome(NamedTuple):
    """What a cloak did: the engine's report and the changed rectangle (None: nothing)."""

    report: dict
    changed: Rect | None


def cloak_rect(surface: Surface, rect: Rect, formats: Formats, engine: Engine) -> Outcome:
    """Read ``rect``, have ``engine`` cloak it, write the result into the shadow buffer.

    Nothing is written when the engine changed nothing (so the caller can skip the undo step).
    """
    before = surface.read(rect, formats.transport)
    after, report = engine(before, rect.width, rect.height, formats.channels, formats.bit_depth)
    sample_bytes = formats.bit_depth // 8
    stride = rect.width * formats.channels * sample_bytes
    spans = changed_spans(before, after, stride)
    changed = bounds(spans, rect, formats.channels * sample_bytes)
    if changed is None:
        return Outcome(report, None)
    if formats.work is None:
        surface.write(rect, formats.transport, after)
    else:
        work = surface.read(rect, formats.work)
        merged = merge_changes(work, before, after, spans, stride, sample_bytes)
        surface.write(rect, formats.work, merged)
    return Outcome(report, changed)


def merge_changes(
    work: bytes, before: bytes, after: bytes, spans: list[Span], stride: int, sample_bytes: int
) -> bytes:
    """Add the engine's change (transport units) onto float samples, only where it changed."""
    code = "B" if sample_bytes == 1 else "H"
    scale = 1.0 / (255.0 if sample_bytes == 1 else 65535.0)
    old, new = array.array(code, before), array.array(code, after)
    out = array.array("f", work)
    row_samples = stride // sample_bytes
    for span in spans:
        base = span.row * row_samples
        for i in range(base + span.start // sample_bytes, base - (-span.end // sample_bytes)):
            if old[i] != new[i]:
                out[i] += (new[i] - old[i]) * scale
    return out.tobytes()
