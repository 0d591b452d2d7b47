"""The GIMP plug-ins' shared code without GIMP: pixel plumbing, engine options, Python 3.8."""

from __future__ import annotations

import array
import ast
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
sys.path.insert(0, str(PLUGINS / "gimp"))

from facecloak_gimp import engine, flow, locate, pixels  # noqa: E402


def test_every_plugin_file_is_python_3_8():
    """GIMP 2.10 may run the plug-in with an old system Python."""
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        ast.parse(path.read_text(), str(path), feature_version=(3, 8))


@pytest.mark.parametrize(
    ("precision", "alpha", "expected"),
    [
        (150, False, ("R'G'B' u8", 8, 3, None)),  # 8-bit gamma: sent and written as it is
        (250, True, ("R'G'B'A u16", 16, 4, None)),
        (100, False, ("R'G'B' u8", 8, 3, "R'G'B' float")),  # linear: merged in float
        (175, True, ("R'G'B'A u8", 8, 4, "R'G'B'A float")),  # perceptual (GIMP 3)
        (650, True, ("R'G'B'A u16", 16, 4, "R'G'B'A float")),
        (700, False, ("R'G'B' u16", 16, 3, "R'G'B' float")),
    ],
)
def test_formats_follow_the_image_precision(precision, alpha, expected):
    assert tuple(pixels.formats_for(precision, alpha)) == expected


def test_changed_spans_find_first_and_last_differing_bytes():
    stride = 12
    before = bytes(range(36))
    after = bytearray(before)
    after[14] ^= 1  # row 1, byte 2
    after[20] ^= 4  # row 1, byte 8
    after[35] ^= 1  # row 2, last byte
    spans = pixels.changed_spans(before, bytes(after), stride)
    assert spans == [pixels.Span(1, 2, 9), pixels.Span(2, 11, 12)]
    assert pixels.bounds(spans, pixels.Rect(10, 20, 4, 3), 3) == pixels.Rect(10, 21, 4, 2)
    assert pixels.changed_spans(before, before, stride) == []


def test_merge_adds_the_change_only_where_the_engine_changed_something():
    before = array.array("H", [0, 1000, 65535, 30000]).tobytes()
    after = array.array("H", [0, 1655, 65535, 29345]).tobytes()
    work = array.array("f", [-0.5, 0.2, 1.5, 0.7]).tobytes()  # HDR and negative values
    spans = pixels.changed_spans(before, after, len(before))
    merged = array.array("f", pixels.merge_changes(work, before, after, spans, len(before), 2))
    assert merged[0] == -0.5 and merged[2] == 1.5
    assert merged[1] == pytest.approx(0.2 + 655 / 65535, abs=1e-6)
    assert merged[3] == pytest.approx(0.7 - 655 / 65535, abs=1e-6)


class FakeLayer(flow.Host):
    """A 4x3 RGB layer in memory; the 'engine' inverts one pixel."""

    def __init__(self, precision: int = 150, selection: pixels.Rect | None = None) -> None:
        self.pixels = bytes(range(36))
        self._precision, self._selection = precision, selection
        self.written: list = []
        self.applied: list = []
        self.steps: list = []
        self.messages: list = []

    def precision(self):
        return self._precision

    def has_alpha(self):
        return False

    def is_rgb(self):
        return True

    def is_group(self):
        return False

    def layer_rect(self):
        return pixels.Rect(0, 0, 4, 3)

    def has_selection(self):
        return self._selection is not None

    def selection_rect(self):
        return self._selection

    def read(self, rect, babl_format):
        size = 4 if babl_format.endswith("float") else 1
        return bytes(rect.width * rect.height * 3 * size)

    def write(self, rect, babl_format, data):
        self.written.append((rect, babl_format, len(data)))

    def progress(self, text, fraction):
        self.steps.append(fraction)

    def apply(self, changed, ignore_selection):
        self.applied.append((changed, ignore_selection))

    def notify(self, text):
        self.messages.append(text)


def _fake_engine(monkeypatch, change: bool = True):
    def factory(options, progress):
        def run(data, width, height, channels, depth):
            progress(0.5)
            out = bytearray(data)
            if change:
                out[channels] = 255  # the second pixel of the first row
            return bytes(out), {"faces": [{"box": [1, 0, 1, 1], "cloaked": True}]}

        return run

    monkeypatch.setattr(engine, "cloak_pixels", factory)


def test_flow_sends_the_selection_and_applies_one_change(monkeypatch):
    _fake_engine(monkeypatch)
    layer = FakeLayer(selection=pixels.Rect(1, 1, 2, 2))
    outcome = flow.cloak(layer, engine.Options(mode="low"))
    assert layer.written == [(pixels.Rect(1, 1, 2, 2), "R'G'B' u8", 12)]
    assert outcome.changed == pixels.Rect(2, 1, 1, 1)
    assert layer.applied == [(pixels.Rect(2, 1, 1, 1), False)]
    assert layer.steps[0] == 0.0 and 0.5 in layer.steps and layer.steps[-1] == 1.0


def test_flow_can_ignore_the_selection_and_merges_float_images(monkeypatch):
    _fake_engine(monkeypatch)
    layer = FakeLayer(precision=600, selection=pixels.Rect(1, 1, 2, 2))
    flow.cloak(layer, engine.Options(mode="mid", selection_only=False))
    assert layer.written == [(pixels.Rect(0, 0, 4, 3), "R'G'B' float", 4 * 3 * 3 * 4)]
    assert layer.applied[0][1] is True


def test_flow_with_no_face_changes_nothing(monkeypatch):
    _fake_engine(monkeypatch, change=False)
    layer = FakeLayer()
    assert flow.cloak(layer, engine.Options()).changed is None
    assert layer.written == [] and layer.applied == []
    assert layer.messages == ["Cloak faces: no face was found in this layer; nothing was changed."]


def test_flow_refuses_bad_modes_and_selections_off_the_layer(monkeypatch):
    _fake_engine(monkeypatch)
    with pytest.raises(engine.PluginError, match="unknown mode"):
        flow.cloak(FakeLayer(), engine.Options(mode="max"))
    layer = FakeLayer(selection=pixels.Rect(0, 0, 1, 1))
    layer.selection_rect = lambda: None  # the selection lies beside this layer
    with pytest.raises(engine.PluginError, match="does not overlap"):
        flow.cloak(layer, engine.Options())


def test_options_pass_only_the_overrides_given():
    assert engine.Options().engine_options() == {}
    cheap = engine.Options(mode="low", steps=2, samples=1, extra_steps=0)
    assert cheap.engine_options() == {"steps": 2, "samples": 1, "extra_steps": 0}


def test_bridge_is_found_in_a_checkout_and_errors_say_what_to_do(monkeypatch, tmp_path):
    assert Path(locate.add_bridge_to_path()).name == "bridges"
    monkeypatch.setattr(locate, "candidates", lambda: [str(tmp_path)])
    with pytest.raises(ImportError, match=r"installers/gimp\.py install"):
        locate.add_bridge_to_path()
