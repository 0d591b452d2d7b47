#!/usr/bin/env bash
# Quick start, part 1: set up, then cloak the public-domain astronaut photo that scikit-image
# ships. Writes out/astronaut-cloaked.png and out/astronaut-before-after.png.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh demo
sample="$(.venv/bin/python -c 'import importlib.util, pathlib; s = importlib.util.find_spec("skimage"); print(pathlib.Path(s.submodule_search_locations[0]) / "data" / "astronaut.png")')"
mkdir -p out
.venv/bin/facecloak cloak "$sample" -o out/astronaut-cloaked.png \
    --before-after out/astronaut-before-after.png --json out/astronaut-report.json --overwrite
