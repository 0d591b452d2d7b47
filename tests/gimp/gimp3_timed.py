"""Run inside GIMP 3 by bench/gimp.py: time the Cloak faces procedure on each case of the plan.

A case with ``handshake`` measures a cold engine: this script says it is ready (the photo is
loaded), waits for the benchmark to start the server and write the wall-clock start time into
the ``go`` file, waits for the socket, then calls the procedure.
"""

import json
import os
import time

from gi.repository import Gimp, Gio


def wait_for(path, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


def run_case(case, plan):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["input"]))
    layer = image.get_layers()[0]
    procedure = Gimp.get_pdb().lookup_procedure("plug-in-facecloak")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    for key, value in case.get("args", {}).items():
        config.set_property(key, value)
    origin = None
    if case.get("handshake"):
        open(plan["ready"], "w").close()
        wait_for(plan["go"])
        with open(plan["go"]) as handle:
            origin = float(handle.read())
        wait_for(plan["socket"])
    started = time.time()
    values = procedure.run(config)
    ended = time.time()
    image.delete()
    return {
        "name": case["name"],
        "status": values.index(0).value_nick,
        "seconds": ended - started,
        "from_server_start": None if origin is None else ended - origin,
    }


def main():
    with open(os.environ["FACECLOAK_TEST_PLAN"]) as handle:
        plan = json.load(handle)
    results = [run_case(case, plan) for case in plan["cases"]]
    with open(plan["out"], "w") as handle:
        json.dump(results, handle)


main()
