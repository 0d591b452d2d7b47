#!/usr/bin/env bash
# Quick start, part 2: set up with the test extras, then lint and run the whole test suite.
# Extra pytest arguments pass through, e.g. scripts/test.sh -k sface
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v exiftool >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing exiftool (Debian package libimage-exiftool-perl) for the metadata tests"
        apt-get update -qq && apt-get install -y -qq libimage-exiftool-perl >/dev/null
    else
        echo "WARNING: exiftool is missing; its checks will be SKIPPED." \
             "Install it with: sudo apt-get install libimage-exiftool-perl" >&2
    fi
fi
scripts/setup-env.sh test
.venv/bin/ruff check engine tests bench installers plugins bridges
.venv/bin/ruff format --check engine tests bench installers plugins bridges
.venv/bin/python -m pytest "$@"
