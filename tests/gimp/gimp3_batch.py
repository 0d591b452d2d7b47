"""Run inside GIMP 3 (``python-fu-eval``): cases from ``$FACECLOAK_TEST_PLAN``, results to JSON.

Each case loads a photo, optionally changes precision, alpha, canvas offset and selection,
calls a facecloak procedure non-interactively, and dumps the layer's pixels before and after
(raw ``R'G'B'A float``) so the test can compare them with numpy outside GIMP.
"""

import json
import os
import time
import traceback

from gi.repository import Gegl, Gimp, Gio

RAW = "R'G'B'A float"


def dump(layer, path):
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    data = layer.get_buffer().get(rect, 1.0, RAW, Gegl.AbyssPolicy.CLAMP)
    with open(path, "wb") as handle:
        handle.write(bytes(data))


def prepare(case):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["input"]))
    layer = image.get_layers()[0]
    if case.get("precision"):
        image.convert_precision(getattr(Gimp.Precision, case["precision"]))
    if case.get("alpha"):
        layer.add_alpha()
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, 24, 24)
        layer.edit_clear()  # a transparent corner: it must stay exactly as it is
        Gimp.Selection.none(image)
    if case.get("offset"):
        dx, dy = case["offset"]
        image.resize(image.get_width() + dx, image.get_height() + dy, dx, dy)
    if case.get("select"):
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *case["select"])
    return image, layer


def call(procedure_name, image, layer, args):
    procedure = Gimp.get_pdb().lookup_procedure(procedure_name)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    for key, value in args.items():
        if key == "file":
            value = Gio.File.new_for_path(value)
        config.set_property(key, value)
    started = time.monotonic()
    values = procedure.run(config)
    seconds = time.monotonic() - started
    status = values.index(0)
    error = values.index(1) if values.length() > 1 else None
    return status.value_nick, error, seconds


def run_case(case, folder):
    image, layer = prepare(case)
    result = {
        "name": case["name"],
        "width": layer.get_width(),
        "height": layer.get_height(),
        "offset": list(layer.get_offsets()[1:]),
        "alpha": layer.has_alpha(),
        "precision": image.get_precision().value_nick,
        "before": os.path.join(folder, case["name"] + "-before.raw"),
        "after": os.path.join(folder, case["name"] + "-after.raw"),
    }
    dump(layer, result["before"])
    status, error, seconds = call(case["procedure"], image, layer, case.get("args", {}))
    result.update(status=status, error=error, seconds=seconds)
    dump(layer, result["after"])
    result["selection_empty"] = Gimp.Selection.is_empty(image)
    if case.get("export"):
        Gimp.file_save(
            Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(case["export"]), None
        )
    image.delete()
    return result


def main():
    with open(os.environ["FACECLOAK_TEST_PLAN"]) as handle:
        plan = json.load(handle)
    folder = os.path.dirname(plan["out"])
    results = []
    for case in plan["cases"]:
        try:
            results.append(run_case(case, folder))
        except Exception:
            results.append({"name": case["name"], "crash": traceback.format_exc()})
    with open(plan["out"], "w") as handle:
        json.dump(results, handle)


main()
