#!/usr/bin/env python3
"""GIMP 2.10: Filters > Privacy > Cloak faces... and Export cloaked copy... (facecloak).

GIMP 2.10 on Debian 12 has no Python-Fu, so this Python 3 script talks to libgimp through
``ctypes`` (``facecloak_gimp.gimp2api``). The procedure itself is shared with the GIMP 3
plug-in (``facecloak_gimp.flow``); only the API adapter is here.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # leave nothing behind that the uninstaller did not install
_HERE = os.path.dirname(os.path.realpath(__file__))
for _folder in (_HERE, os.path.join(_HERE, "..", "..")):  # installed; or in a checkout
    if os.path.isdir(os.path.join(_folder, "facecloak_gimp")):
        sys.path.insert(0, os.path.normpath(_folder))
        break

from facecloak_gimp import engine, flow, pixels, texts  # noqa: E402
from facecloak_gimp import gimp2api as api  # noqa: E402
from facecloak_gimp.gimp2api import lib  # noqa: E402

CLOAK_PARAMS = [
    (api.PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"),
    (api.PDB_IMAGE, "image", "Input image"),
    (api.PDB_DRAWABLE, "drawable", "The RGB layer to cloak"),
    (api.PDB_INT32, "mode", "Strength { low (0), mid (1), high (2) }"),
    (api.PDB_INT32, "selection-only", "With a selection, cloak only faces inside it { 0, 1 }"),
    (api.PDB_INT32, "seed", "Same seed, same cloak"),
    (api.PDB_INT32, "steps", "Expert: optimiser steps (0: the mode's)"),
    (api.PDB_INT32, "samples", "Expert: samples per step (0: the mode's)"),
    (api.PDB_INT32, "extra-steps", "Expert: most extra steps (-1: the mode's)"),
]
EXPORT_PARAMS = [
    CLOAK_PARAMS[0],
    CLOAK_PARAMS[1],
    (api.PDB_DRAWABLE, "drawable", "Any drawable of the image (unused)"),
    (api.PDB_STRING, "filename", "The file to write (its extension picks the format)"),
]
_KEEP = []  # C data libgimp may read after query() returns


class Layer(flow.Host):
    """One drawable of a GIMP 2.10 image, by ID."""

    def __init__(self, image: int, drawable: int) -> None:
        self.image = image
        self.drawable = drawable

    def precision(self) -> int:
        return lib.gimp_image_get_precision(self.image)

    def has_alpha(self) -> bool:
        return bool(lib.gimp_drawable_has_alpha(self.drawable))

    def is_rgb(self) -> bool:
        return bool(lib.gimp_drawable_is_rgb(self.drawable))

    def is_group(self) -> bool:
        return bool(lib.gimp_item_is_group(self.drawable))

    def layer_rect(self) -> pixels.Rect:
        width = lib.gimp_drawable_width(self.drawable)
        return pixels.Rect(0, 0, width, lib.gimp_drawable_height(self.drawable))

    def has_selection(self) -> bool:
        return not lib.gimp_selection_is_empty(self.image)

    def selection_rect(self):
        found = api.mask_intersect(self.drawable)
        return None if found is None else pixels.Rect(*found)

    def read(self, rect: pixels.Rect, babl_format: str) -> bytes:
        return api.read_buffer(self.drawable, rect, babl_format)

    def write(self, rect: pixels.Rect, babl_format: str, data: bytes) -> None:
        api.write_shadow(self.drawable, rect, babl_format, data)

    def progress(self, text, fraction: float) -> None:
        if text is not None:
            lib.gimp_progress_init(api.text(text))
        lib.gimp_progress_update(fraction)

    def notify(self, text: str) -> None:
        lib.gimp_message(api.text(text))

    def apply(self, changed: pixels.Rect, ignore_selection: bool) -> None:
        lib.gimp_image_undo_group_start(self.image)
        try:
            saved = -1
            if ignore_selection:  # the user asked for every face: lift the selection meanwhile
                saved = lib.gimp_selection_save(self.image)
                lib.gimp_selection_none(self.image)
            lib.gimp_drawable_merge_shadow(self.drawable, 1)
            if saved != -1:
                lib.gimp_image_select_item(self.image, api.CHANNEL_OP_REPLACE, saved)
                lib.gimp_image_remove_channel(self.image, saved)
        finally:
            lib.gimp_image_undo_group_end(self.image)
        lib.gimp_drawable_update(self.drawable, *changed)
        lib.gimp_displays_flush()


def query() -> None:
    for name, label, blurb, help_text, types, params in (
        (texts.CLOAK_PROC, texts.CLOAK_LABEL, texts.CLOAK_BLURB, texts.CLOAK_HELP, "RGB*",
         CLOAK_PARAMS),
        (texts.EXPORT_PROC, texts.EXPORT_LABEL, texts.EXPORT_BLURB, texts.EXPORT_HELP, "*",
         EXPORT_PARAMS),
    ):  # fmt: skip
        defs = api.param_defs(params)
        _KEEP.append(defs)
        lib.gimp_install_procedure(
            api.text(name), api.text(blurb), api.text(help_text), api.text(texts.AUTHOR),
            api.text(texts.AUTHOR), api.text(texts.DATE), api.text(label), api.text(types),
            api.PROC_PLUGIN, len(params), 0, defs, None,
        )  # fmt: skip
        lib.gimp_plugin_menu_register(api.text(name), api.text(texts.MENU))


def _last_values() -> engine.Options:
    try:
        stored = json.loads(api.get_data(texts.CLOAK_PROC).decode("utf-8") or "{}")
        return engine.Options(**{k: v for k, v in stored.items() if k in engine.Options._fields})
    except (ValueError, TypeError):
        return engine.Options()


def _cloak_options(run_mode: int, args) -> engine.Options:
    if run_mode == api.RUN_NONINTERACTIVE:
        given = [args[i].d_int32 for i in range(3, len(args))]
        mode, selection_only, seed, steps, samples, extra = (
            given + [1, 1, 0, 0, 0, -1][len(given) :]
        )
        if not 0 <= mode < len(texts.MODES):
            raise engine.PluginError("Cloak faces: mode must be 0 (low), 1 (mid) or 2 (high)")
        return engine.Options(texts.MODES[mode], bool(selection_only), seed, steps, samples, extra)
    options = _last_values()
    if run_mode == api.RUN_INTERACTIVE:
        from facecloak_gimp import gtk2dialog

        options = gtk2dialog.ask_cloak_options(options)
    return options


def _run_cloak(run_mode: int, args) -> None:
    options = _cloak_options(run_mode, args)
    if options is None:
        raise _Cancel()
    api.set_data(texts.CLOAK_PROC, json.dumps(options._asdict()).encode("utf-8"))
    flow.cloak(Layer(args[1].d_int32, args[2].d_int32), options)


def _run_export(run_mode: int, args) -> None:
    image = args[1].d_int32
    if run_mode == api.RUN_INTERACTIVE:
        from facecloak_gimp import gtk2dialog

        target = gtk2dialog.ask_export_file()
        if target is None:
            raise _Cancel()
    elif len(args) < 4 or not args[3].d_string:
        raise engine.PluginError("Export cloaked copy: give the file to write")
    else:
        target = args[3].d_string.decode("utf-8")

    def save(path: str) -> None:
        copy = lib.gimp_image_duplicate(image)
        try:
            layer = lib.gimp_image_merge_visible_layers(copy, api.CLIP_TO_IMAGE)
            raw = api.text(path)
            if not lib.gimp_file_save(api.RUN_NONINTERACTIVE, copy, layer, raw, raw):
                raise engine.PluginError(f"Export cloaked copy: GIMP could not write {path}")
        finally:
            lib.gimp_image_delete(copy)

    report = engine.export_scrubbed(save, target)
    engine.log(f"facecloak: exported {target} with metadata scrubbed ({report})")


class _Cancel(Exception):
    """The user closed the dialog."""


_RETURNS = api.Returns()


def run(name, count, params, n_return, returns) -> None:
    args = [params[i].data for i in range(count)]
    run_mode = args[0].d_int32
    lib.gegl_init(None, None)
    lib.gimp_plugin_enable_precision()
    status, message = api.STATUS_SUCCESS, None
    try:
        if name == api.text(texts.CLOAK_PROC):
            _run_cloak(run_mode, args)
        else:
            _run_export(run_mode, args)
    except _Cancel:
        status = api.STATUS_CANCEL
    except engine.PluginError as error:
        status, message = api.STATUS_EXECUTION_ERROR, str(error)
    except Exception as error:  # never let a Python error pass through C silently
        status = api.STATUS_EXECUTION_ERROR
        message = f"Cloak faces failed, the image was not changed: {type(error).__name__}: {error}"
    if message:
        engine.log(message)
        if run_mode != api.RUN_INTERACTIVE:
            lib.gimp_message(api.text(message))  # scripts and batch runs see it on the console
    _RETURNS.set(status, message, n_return, returns)


INFO = api.PlugInInfo(api.VoidProc(0), api.VoidProc(0), api.VoidProc(query), api.RunProc(run))
sys.exit(api.run_main(INFO))
