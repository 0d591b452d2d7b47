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
# TensorFlow.js, the HSE model's own runtime, for its parity test (tests/tfjs).
if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tests/tfjs --silent --no-audit --no-fund
else
    echo "WARNING: npm is missing; the HSE model's tests will be SKIPPED." \
         "Install it with: sudo apt-get install npm" >&2
fi
.venv/bin/ruff check engine tests bench installers plugins bridges
.venv/bin/ruff format --check engine tests bench installers plugins bridges
.venv/bin/python -m pytest "$@"
