#!/usr/bin/env bash
# One command to install facecloak for the current user: the engine environment, the
# `facecloak` commands, and the GIMP and darktable plug-ins that it finds.
#   installers/install.sh [--dry-run] [--cuda] [--wheelhouse DIR] [--torch-index URL]
#   installers/install.sh --check        # the doctor: is everything in place and working?
#   installers/install.sh --uninstall    # remove exactly what the install created
# Everything happens in installers/facecloak_install.py; this wrapper only finds a Python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        exec "$candidate" "$here/facecloak_install.py" "$@"
    fi
done
echo "facecloak needs Python 3.11 or newer: install it (Debian: sudo apt install python3 python3-venv)" >&2
exit 2
