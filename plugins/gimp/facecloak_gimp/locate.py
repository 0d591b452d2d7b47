"""Finding the bridge client (``facecloak_bridge``) from inside GIMP's Python.

The installer copies it next to the plug-in. Otherwise it comes from ``FACECLOAK_BRIDGE_PATH``
(a folder holding ``facecloak_bridge``), or from a facecloak checkout the plug-in runs from.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "FACECLOAK_BRIDGE_PATH"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def candidates() -> list[str]:
    """Folders that may hold ``facecloak_bridge``, most specific first."""
    found = [os.path.dirname(_PACKAGE_DIR)]  # installed: next to facecloak_gimp
    extra = os.environ.get(ENV_VAR, "")
    found += [path for path in extra.split(os.pathsep) if path]
    found.append(os.path.join(_PACKAGE_DIR, "..", "..", "..", "bridges"))  # a checkout
    return [os.path.normpath(path) for path in found]


def add_bridge_to_path() -> str:
    """Put the first folder holding ``facecloak_bridge`` on ``sys.path``; returns it.

    Raises ImportError with the places tried, so the plug-in can say what to do.
    """
    tried = candidates()
    for folder in tried:
        if os.path.isfile(os.path.join(folder, "facecloak_bridge", "client.py")):
            if folder not in sys.path:
                sys.path.insert(0, folder)
            return folder
    raise ImportError(
        "the facecloak bridge client was not found (looked in "
        + ", ".join(tried)
        + "); reinstall the plug-in with: python3 installers/gimp.py install"
    )
