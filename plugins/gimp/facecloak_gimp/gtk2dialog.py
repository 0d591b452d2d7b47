"""GIMP 2.10's dialogs, built with GTK 2 through ``ctypes`` (GIMP already loaded it).

The same fields as GIMP 3's procedure dialog: the mode, "only faces in the selection", and the
note about exported metadata; and a file chooser for *Export cloaked copy...*.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_int, c_void_p

from facecloak_gimp import engine, texts

RESPONSE_OK, RESPONSE_CANCEL, RESPONSE_ACCEPT = -5, -6, -3
FILE_CHOOSER_SAVE = 1


def _libraries():
    gimpui = ctypes.CDLL("libgimpui-2.0.so.0")
    gtk = ctypes.CDLL("libgtk-x11-2.0.so.0")
    glib = ctypes.CDLL("libglib-2.0.so.0")
    gimpui.gimp_ui_init.argtypes = [c_char_p, c_int]
    gimpui.gimp_ui_init(b"facecloak-gimp", 0)
    for name in (
        "gtk_dialog_new_with_buttons", "gtk_dialog_get_content_area", "gtk_combo_box_text_new",
        "gtk_check_button_new_with_mnemonic", "gtk_label_new", "gtk_vbox_new",
        "gtk_file_chooser_dialog_new", "gtk_file_chooser_get_filename",
    ):  # fmt: skip
        getattr(gtk, name).restype = c_void_p
    return gtk, glib


def _b(value: str) -> bytes:
    return value.encode("utf-8")


def ask_cloak_options(current: engine.Options) -> engine.Options | None:
    """Show the Cloak faces dialog; the chosen options, or None when cancelled."""
    gtk, _ = _libraries()
    dialog = c_void_p(gtk.gtk_dialog_new_with_buttons(
        b"Cloak faces", None, 0, b"gtk-cancel", RESPONSE_CANCEL, b"gtk-ok", RESPONSE_OK, None
    ))  # fmt: skip
    box = c_void_p(gtk.gtk_vbox_new(0, 6))
    gtk.gtk_container_set_border_width(box, 12)
    gtk.gtk_box_pack_start(c_void_p(gtk.gtk_dialog_get_content_area(dialog)), box, 1, 1, 0)
    combo = c_void_p(gtk.gtk_combo_box_text_new())
    for mode in texts.MODES:
        gtk.gtk_combo_box_text_append_text(combo, _b(f"{mode}: {texts.MODE_HELP[mode]}"))
    gtk.gtk_combo_box_set_active(combo, texts.MODES.index(current.mode))
    check = c_void_p(gtk.gtk_check_button_new_with_mnemonic(b"Only _faces in the selection"))
    gtk.gtk_toggle_button_set_active(check, int(current.selection_only))
    note = c_void_p(gtk.gtk_label_new(_b(texts.SCRUB_NOTE)))
    gtk.gtk_label_set_line_wrap(note, 1)
    for widget in (combo, check, note):
        gtk.gtk_box_pack_start(box, widget, 0, 0, 0)
    gtk.gtk_widget_show_all(dialog)
    response = gtk.gtk_dialog_run(dialog)
    mode = texts.MODES[max(0, gtk.gtk_combo_box_get_active(combo))]
    selection_only = bool(gtk.gtk_toggle_button_get_active(check))
    gtk.gtk_widget_destroy(dialog)
    if response != RESPONSE_OK:
        return None
    return current._replace(mode=mode, selection_only=selection_only)


def ask_export_file() -> str | None:
    """A save-file chooser; the chosen path, or None when cancelled."""
    gtk, glib = _libraries()
    dialog = c_void_p(gtk.gtk_file_chooser_dialog_new(
        b"Export cloaked copy", None, FILE_CHOOSER_SAVE,
        b"gtk-cancel", RESPONSE_CANCEL, b"gtk-save", RESPONSE_ACCEPT, None,
    ))  # fmt: skip
    gtk.gtk_file_chooser_set_do_overwrite_confirmation(dialog, 1)
    gtk.gtk_file_chooser_set_current_name(dialog, b"cloaked.jpg")
    path = None
    if gtk.gtk_dialog_run(dialog) == RESPONSE_ACCEPT:
        name = gtk.gtk_file_chooser_get_filename(dialog)
        if name:
            path = ctypes.string_at(name).decode("utf-8")
            glib.g_free(c_void_p(name))
    gtk.gtk_widget_destroy(dialog)
    return path
