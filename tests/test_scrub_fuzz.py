"""Fuzzing the scrubber with mutated real files (hypothesis, bounded to ~10 s).

Whatever the bytes, a scrub must end in a clean error or a clean output: no crash other than
``ScrubError``, no hang, no temporary file left, and nothing outside the allowlist written.
"""

from __future__ import annotations

import time
from pathlib import Path

from facecloak.scrub import ScrubError, scrub_file
from facecloak.scrub.exiftool import ExifTool
from facecloak.scrub.formats import EXTENSIONS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import shared_data
from tests.test_scrub import exiftool_read, leftovers, require_exiftool

SEEDS = [
    ("exiftool-t-images", "GPS.jpg"),
    ("exiftool-t-images", "ExtendedXMP.jpg"),
    ("exiftool-t-images", "PNG.png"),
    ("exiftool-t-images", "RIFF.webp"),
    ("exiftool-t-images", "GIF.gif"),
    ("exiftool-t-images", "ExifTool.tif"),
    ("mat2-tests-data", "dirty.gif"),
]
BUDGET_S = 12.0
_KEEP_HEAD = 12


def _mutate(data: bytes, edits: list[tuple[int, int, int]], cut: int | None) -> bytes:
    buffer = bytearray(data)
    for kind, where, value in edits:
        pos = _KEEP_HEAD + where % max(1, len(buffer) - _KEEP_HEAD)  # a broken signature is dull
        if kind == 0:
            buffer[pos] = value  # overwrite a byte
        elif kind == 1:
            buffer.insert(pos, value)  # insert a byte
        elif len(buffer) > 1:
            del buffer[pos]  # delete a byte
    if cut is not None:
        buffer = buffer[: max(1, cut % (len(buffer) + 1))]
    return bytes(buffer)


def test_mutated_files_scrub_cleanly_or_fail_cleanly(tmp_path):
    require_exiftool()
    seeds = [shared_data("meta", *parts).read_bytes() for parts in SEEDS]
    tool = ExifTool(timeout=10)  # its own process: a kill on timeout stays in this test
    written: list[tuple[str, Path]] = []
    counter = {"runs": 0, "errors": 0}
    deadline = time.monotonic() + BUDGET_S

    @settings(
        max_examples=300, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(
        seed=st.integers(0, len(seeds) - 1),
        edits=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)),
                       max_size=8),
        cut=st.one_of(st.none(), st.integers(0, 1 << 20)),
    )  # fmt: skip
    def run(seed: int, edits: list[tuple[int, int, int]], cut: int | None) -> None:
        if time.monotonic() > deadline:
            return
        index = counter["runs"]
        counter["runs"] += 1
        source = tmp_path / f"in{index}{Path(SEEDS[seed][1]).suffix}"
        source.write_bytes(_mutate(seeds[seed], edits, cut))
        destination = tmp_path / f"out{index}{source.suffix}"
        started = time.monotonic()
        try:
            report = scrub_file(source, destination, exiftool=tool)
        except ScrubError as error:
            counter["errors"] += 1
            assert "\n" not in str(error)
            assert not destination.exists()
        else:
            written.append((report.format, destination))
        assert time.monotonic() - started < 15
        source.unlink()

    try:
        run()
    finally:
        tool.close()
    assert counter["runs"] >= 20 and len(written) >= 10, (counter, len(written))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    tags = exiftool_read([dest for _fmt, dest in written])
    dirty = {dest.name: leftovers(fmt, tags[dest]) for fmt, dest in written if dest in tags}
    assert not any(dirty.values()), {name: left for name, left in dirty.items() if left}
    assert set(EXTENSIONS) >= {fmt for fmt, _dest in written}
