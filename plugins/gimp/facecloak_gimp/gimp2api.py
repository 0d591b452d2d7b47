"""GIMP 2.10's plug-in API through ``ctypes``: what facecloak needs of libgimp, GEGL and babl.

Debian 12's GIMP 2.10 has no Python-Fu, but a Python 3 script can be a plug-in by calling
libgimp's C API itself. Only the functions used are declared; each with its C signature.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    byref,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_uint32,
    c_void_p,
)
from typing import Sequence

# Enum values of libgimp 2.10 (gimpenums.h / gimpbaseenums.h)
PDB_INT32, PDB_STRING, PDB_IMAGE, PDB_DRAWABLE, PDB_STATUS = 0, 4, 13, 16, 21
STATUS_EXECUTION_ERROR, STATUS_CALLING_ERROR, STATUS_SUCCESS, STATUS_CANCEL = 0, 1, 3, 4
RUN_INTERACTIVE, RUN_NONINTERACTIVE, RUN_WITH_LAST_VALS = 0, 1, 2
PROC_PLUGIN = 1
CHANNEL_OP_REPLACE = 2
CLIP_TO_IMAGE = 1
ABYSS_CLAMP = 1


class ParamData(Union):
    """GimpParamData: the largest member is a GimpRGB (four doubles)."""

    _fields_ = [
        ("d_int32", c_int32),
        ("d_float", c_double),
        ("d_string", c_char_p),
        ("d_pointer", c_void_p),
        ("_size", c_char * 32),
    ]


class Param(Structure):
    _fields_ = [("type", c_int), ("data", ParamData)]


class ParamDef(Structure):
    _fields_ = [("type", c_int), ("name", c_char_p), ("description", c_char_p)]


class Rectangle(Structure):
    """GeglRectangle."""

    _fields_ = [("x", c_int), ("y", c_int), ("width", c_int), ("height", c_int)]


VoidProc = CFUNCTYPE(None)
RunProc = CFUNCTYPE(None, c_char_p, c_int, POINTER(Param), POINTER(c_int), POINTER(POINTER(Param)))


class PlugInInfo(Structure):
    _fields_ = [("init", VoidProc), ("quit", VoidProc), ("query", VoidProc), ("run", RunProc)]


_LIBRARIES = {
    "gimp": ("libgimp-2.0.so.0", "libgimp-2.0.0.dylib", "libgimp-2.0-0.dll"),
    "gegl": ("libgegl-0.4.so.0", "libgegl-0.4.0.dylib", "libgegl-0.4-0.dll"),
    "babl": ("libbabl-0.1.so.0", "libbabl-0.1.0.dylib", "libbabl-0.1-0.dll"),
    "gobject": ("libgobject-2.0.so.0", "libgobject-2.0.0.dylib", "libgobject-2.0-0.dll"),
}
N, P, S, D = c_int32, c_void_p, c_char_p, c_double  # ID number, pointer, string, double
# name: (library, result type, argument types)
_SIGNATURES: dict[str, tuple[str, object, Sequence[object]]] = {
    "gimp_main": ("gimp", c_int, [POINTER(PlugInInfo), c_int, POINTER(c_char_p)]),
    "gimp_install_procedure": (
        "gimp",
        None,
        [S, S, S, S, S, S, S, S, c_int, c_int, c_int, POINTER(ParamDef), P],
    ),
    "gimp_plugin_menu_register": ("gimp", c_int, [S, S]),
    "gimp_plugin_enable_precision": ("gimp", c_int, []),
    "gimp_image_get_precision": ("gimp", c_int, [N]),
    "gimp_drawable_is_rgb": ("gimp", c_int, [N]),
    "gimp_drawable_has_alpha": ("gimp", c_int, [N]),
    "gimp_item_is_group": ("gimp", c_int, [N]),
    "gimp_drawable_width": ("gimp", c_int, [N]),
    "gimp_drawable_height": ("gimp", c_int, [N]),
    "gimp_drawable_mask_intersect": ("gimp", c_int, [N] + [POINTER(c_int)] * 4),
    "gimp_drawable_get_buffer": ("gimp", P, [N]),
    "gimp_drawable_get_shadow_buffer": ("gimp", P, [N]),
    "gimp_drawable_merge_shadow": ("gimp", c_int, [N, c_int]),
    "gimp_drawable_update": ("gimp", c_int, [N, c_int, c_int, c_int, c_int]),
    "gimp_displays_flush": ("gimp", c_int, []),
    "gimp_selection_is_empty": ("gimp", c_int, [N]),
    "gimp_selection_save": ("gimp", N, [N]),
    "gimp_selection_none": ("gimp", c_int, [N]),
    "gimp_image_select_item": ("gimp", c_int, [N, c_int, N]),
    "gimp_image_remove_channel": ("gimp", c_int, [N, N]),
    "gimp_image_undo_group_start": ("gimp", c_int, [N]),
    "gimp_image_undo_group_end": ("gimp", c_int, [N]),
    "gimp_image_duplicate": ("gimp", N, [N]),
    "gimp_image_merge_visible_layers": ("gimp", N, [N, c_int]),
    "gimp_image_delete": ("gimp", c_int, [N]),
    "gimp_file_save": ("gimp", c_int, [c_int, N, N, S, S]),
    "gimp_progress_init": ("gimp", c_int, [S]),
    "gimp_progress_update": ("gimp", c_int, [D]),
    "gimp_message": ("gimp", c_int, [S]),
    "gimp_procedural_db_get_data_size": ("gimp", c_int, [S]),
    "gimp_procedural_db_get_data": ("gimp", c_int, [S, P]),
    "gimp_procedural_db_set_data": ("gimp", c_int, [S, P, c_uint32]),
    "gegl_init": ("gegl", None, [P, P]),
    "gegl_buffer_get": ("gegl", None, [P, POINTER(Rectangle), D, P, P, c_int, c_int]),
    "gegl_buffer_set": ("gegl", None, [P, POINTER(Rectangle), c_int, P, P, c_int]),
    "gegl_buffer_flush": ("gegl", None, [P]),
    "babl_format": ("babl", P, [S]),
    "g_object_unref": ("gobject", None, [P]),
}


class _Lib:
    """Attribute access to the declared C functions, loaded on first use."""

    def __init__(self) -> None:
        self._handles: dict[str, ctypes.CDLL] = {}

    def _handle(self, name: str) -> ctypes.CDLL:
        if name not in self._handles:
            errors = []
            for candidate in _LIBRARIES[name]:
                try:
                    self._handles[name] = ctypes.CDLL(candidate)
                    break
                except OSError as error:
                    errors.append(str(error))
            else:
                raise OSError(f"cannot load {name}: {'; '.join(errors)}")
        return self._handles[name]

    def __getattr__(self, name: str):
        library, result, arguments = _SIGNATURES[name]
        function = getattr(self._handle(library), name)
        function.restype = result
        function.argtypes = list(arguments)
        setattr(self, name, function)
        return function


lib = _Lib()


def text(value: str) -> bytes:
    return value.encode("utf-8")


def param_defs(params: list[tuple[int, str, str]]):
    """A C array of GimpParamDef (kept alive by the caller)."""
    array = (ParamDef * len(params))()
    for slot, (kind, name, description) in zip(array, params):
        slot.type, slot.name, slot.description = kind, text(name), text(description)
    return array


class Returns:
    """The run procedure's return values; kept alive here, as libgimp reads them later."""

    def __init__(self) -> None:
        self.values = (Param * 2)()
        self._message = b""

    def set(self, status: int, message: str | None, count, values) -> None:
        self.values[0].type = PDB_STATUS
        self.values[0].data.d_int32 = status
        used = 1
        if message:
            self._message = text(message)
            self.values[1].type = PDB_STRING
            self.values[1].data.d_string = self._message
            used = 2
        count[0] = used
        values[0] = ctypes.cast(self.values, POINTER(Param))


def run_main(info: PlugInInfo) -> int:
    """gimp_main() with this script's command line (GIMP passes its pipes there)."""
    argv = (c_char_p * (len(sys.argv) + 1))(*[text(arg) for arg in sys.argv], None)
    return lib.gimp_main(byref(info), len(sys.argv), argv)


def read_buffer(drawable: int, rect, babl_format: str, shadow: bool = False) -> bytes:
    """Pixels of ``rect`` (layer coordinates) in a babl format, rows packed."""
    buffer = lib.gimp_drawable_get_buffer(drawable)
    fmt = lib.babl_format(text(babl_format))
    size = _pixel_bytes(babl_format) * rect.width * rect.height
    data = ctypes.create_string_buffer(size)
    area = Rectangle(*rect)
    try:
        lib.gegl_buffer_get(buffer, byref(area), 1.0, fmt, data, 0, ABYSS_CLAMP)
    finally:
        lib.g_object_unref(buffer)
    return data.raw


def write_shadow(drawable: int, rect, babl_format: str, data: bytes) -> None:
    """Write ``data`` (rows packed) into the drawable's shadow buffer."""
    buffer = lib.gimp_drawable_get_shadow_buffer(drawable)
    fmt = lib.babl_format(text(babl_format))
    area = Rectangle(*rect)
    try:
        lib.gegl_buffer_set(buffer, byref(area), 0, fmt, data, 0)
        lib.gegl_buffer_flush(buffer)
    finally:
        lib.g_object_unref(buffer)


def _pixel_bytes(babl_format: str) -> int:
    model, sample = babl_format.split(" ")
    channels = 4 if model.endswith("A") else 3
    return channels * {"u8": 1, "u16": 2, "float": 4}[sample]


def mask_intersect(drawable: int) -> tuple[int, int, int, int] | None:
    values = [c_int() for _ in range(4)]
    if not lib.gimp_drawable_mask_intersect(drawable, *[byref(v) for v in values]):
        return None
    x, y, width, height = (v.value for v in values)
    return x, y, width, height


def get_data(name: str) -> bytes:
    """Bytes stored with gimp_set_data (the last values), or b'' when there are none."""
    size = lib.gimp_procedural_db_get_data_size(text(name))
    if size <= 0:
        return b""
    data = ctypes.create_string_buffer(size)
    return data.raw if lib.gimp_procedural_db_get_data(text(name), data) else b""


def set_data(name: str, data: bytes) -> None:
    lib.gimp_procedural_db_set_data(text(name), data, len(data))
