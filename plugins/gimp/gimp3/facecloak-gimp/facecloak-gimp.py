#!/usr/bin/env python3
"""GIMP 3: Filters > Privacy > Cloak faces... and Export cloaked copy... (facecloak).

Thin on purpose: GIMP's API calls only. The procedure itself, the pixel plumbing and the
engine calls live in ``facecloak_gimp``, shared with the GIMP 2.10 plug-in.
"""

import os
import sys

sys.dont_write_bytecode = True  # leave nothing behind that the uninstaller did not install
_HERE = os.path.dirname(os.path.realpath(__file__))
for _folder in (_HERE, os.path.join(_HERE, "..", "..")):  # installed; or in a checkout
    if os.path.isdir(os.path.join(_folder, "facecloak_gimp")):
        sys.path.insert(0, os.path.normpath(_folder))
        break

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Gtk", "3.0")
from facecloak_gimp import engine, flow, pixels, texts  # noqa: E402
from gi.repository import Gegl, Gimp, GimpUi, Gio, GLib, GObject, Gtk  # noqa: E402

RW = GObject.ParamFlags.READWRITE


class Layer(flow.Host):
    """One drawable of a GIMP 3 image."""

    def __init__(self, image: Gimp.Image, drawable: Gimp.Drawable) -> None:
        self.image = image
        self.drawable = drawable

    def precision(self) -> int:
        return int(self.image.get_precision())

    def has_alpha(self) -> bool:
        return self.drawable.has_alpha()

    def is_rgb(self) -> bool:
        return self.drawable.is_rgb()

    def is_group(self) -> bool:
        return self.drawable.is_group()

    def layer_rect(self) -> pixels.Rect:
        return pixels.Rect(0, 0, self.drawable.get_width(), self.drawable.get_height())

    def has_selection(self) -> bool:
        return not Gimp.Selection.is_empty(self.image)

    def selection_rect(self):
        overlaps, x, y, width, height = self.drawable.mask_intersect()
        return pixels.Rect(x, y, width, height) if overlaps else None

    def read(self, rect: pixels.Rect, babl_format: str) -> bytes:
        area = Gegl.Rectangle.new(*rect)
        data = self.drawable.get_buffer().get(area, 1.0, babl_format, Gegl.AbyssPolicy.CLAMP)
        return bytes(data)

    def write(self, rect: pixels.Rect, babl_format: str, data: bytes) -> None:
        shadow = self.drawable.get_shadow_buffer()
        shadow.set(Gegl.Rectangle.new(*rect), babl_format, data)
        shadow.flush()

    def progress(self, text, fraction: float) -> None:
        if text is not None:
            Gimp.progress_init(text)
        Gimp.progress_update(fraction)

    def notify(self, text: str) -> None:
        Gimp.message(text)

    def apply(self, changed: pixels.Rect, ignore_selection: bool) -> None:
        self.image.undo_group_start()
        try:
            saved = None
            if ignore_selection:  # the user asked for every face: lift the selection meanwhile
                saved = Gimp.Selection.save(self.image)
                Gimp.Selection.none(self.image)
            self.drawable.merge_shadow(True)
            if saved is not None:
                self.image.select_item(Gimp.ChannelOps.REPLACE, saved)
                self.image.remove_channel(saved)
        finally:
            self.image.undo_group_end()
        self.drawable.update(*changed)
        Gimp.displays_flush()


def _fail(procedure, run_mode, message: str):
    if run_mode != Gimp.RunMode.INTERACTIVE:
        Gimp.message(message)  # scripts and batch runs see it on the console
    engine.log(message)
    error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


def _dialog(procedure, config, title: str, fields) -> bool:
    """GIMP 3's procedure dialog for ``fields``, with the note about exported metadata."""
    GimpUi.init("facecloak-gimp")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    dialog.fill(fields)
    note = Gtk.Label(label=texts.SCRUB_NOTE)
    note.set_line_wrap(True)
    note.set_max_width_chars(48)
    note.set_xalign(0.0)
    note.set_margin_start(12)
    note.set_margin_end(12)
    note.show()
    dialog.get_content_area().pack_end(note, False, False, 6)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


def run_cloak(procedure, run_mode, image, drawables, config, _data):
    if len(drawables) != 1:
        return _fail(procedure, run_mode, "Cloak faces works on one layer: select just one")
    fields = ["mode", "selection-only"]
    if run_mode == Gimp.RunMode.INTERACTIVE and not _dialog(
        procedure, config, "Cloak faces", fields
    ):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    options = engine.Options(
        mode=config.get_property("mode"),
        selection_only=config.get_property("selection-only"),
        seed=config.get_property("seed"),
        steps=config.get_property("steps"),
        samples=config.get_property("samples"),
        extra_steps=config.get_property("extra-steps"),
    )
    try:
        flow.cloak(Layer(image, drawables[0]), options)
    except engine.PluginError as error:
        return _fail(procedure, run_mode, str(error))
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


def run_export(procedure, run_mode, image, _drawables, config, _data):
    title = "Export cloaked copy"
    if run_mode == Gimp.RunMode.INTERACTIVE and not _dialog(procedure, config, title, ["file"]):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    target = config.get_property("file")
    if target is None or target.get_path() is None:
        return _fail(procedure, run_mode, "Export cloaked copy: choose a local file to write")

    def save(path: str) -> None:
        copy = image.duplicate()
        try:
            copy.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
            Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, copy, Gio.File.new_for_path(path), None)
        finally:
            copy.delete()

    try:
        report = engine.export_scrubbed(save, target.get_path())
    except engine.PluginError as error:
        return _fail(procedure, run_mode, str(error))
    engine.log(f"facecloak: exported {target.get_path()} with metadata scrubbed ({report})")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


class FacecloakPlugIn(Gimp.PlugIn):
    """Registers the two procedures; GIMP asks for them by name."""

    def do_query_procedures(self):
        return [texts.CLOAK_PROC, texts.EXPORT_PROC]

    def do_set_i18n(self, _name):
        return False

    def do_create_procedure(self, name):
        if name == texts.CLOAK_PROC:
            procedure = Gimp.ImageProcedure.new(
                self, name, Gimp.PDBProcType.PLUGIN, run_cloak, None
            )
            procedure.set_image_types("RGB*")
            procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
            procedure.set_menu_label(texts.CLOAK_LABEL)
            procedure.set_documentation(texts.CLOAK_BLURB, texts.CLOAK_HELP, name)
            _cloak_arguments(procedure)
        else:
            procedure = Gimp.ImageProcedure.new(
                self, name, Gimp.PDBProcType.PLUGIN, run_export, None
            )
            procedure.set_image_types("*")
            procedure.set_sensitivity_mask(
                Gimp.ProcedureSensitivityMask.DRAWABLE
                | Gimp.ProcedureSensitivityMask.DRAWABLES
                | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
            )
            procedure.set_menu_label(texts.EXPORT_LABEL)
            procedure.set_documentation(texts.EXPORT_BLURB, texts.EXPORT_HELP, name)
            procedure.add_file_argument(
                "file", "_File", "The file to write (its extension picks the format)",
                Gimp.FileChooserAction.SAVE, False, None, RW,
            )  # fmt: skip
        procedure.add_menu_path(texts.MENU)
        procedure.set_attribution(texts.AUTHOR, texts.AUTHOR, texts.DATE)
        return procedure


def _cloak_arguments(procedure) -> None:
    modes = Gimp.Choice.new()
    for number, mode in enumerate(texts.MODES):
        modes.add(mode, number, mode.capitalize(), texts.MODE_HELP[mode])
    procedure.add_choice_argument("mode", "_Mode", "How strong the cloak is", modes, "mid", RW)
    procedure.add_boolean_argument(
        "selection-only", "Only _faces in the selection", texts.SELECTION_HELP, True, RW
    )
    procedure.add_int_argument("seed", "Seed", "Same seed, same cloak", 0, 2**31 - 1, 0, RW)
    procedure.add_int_argument(
        "steps", "Steps", "Expert: optimiser steps (0: the mode's)", 0, 10000, 0, RW
    )
    procedure.add_int_argument(
        "samples", "Samples", "Expert: samples per step (0: the mode's)", 0, 64, 0, RW
    )
    procedure.add_int_argument(
        "extra-steps", "Extra steps", "Expert: most extra steps (-1: the mode's)", -1, 10000, -1, RW
    )


Gimp.main(FacecloakPlugIn.__gtype__, sys.argv)
