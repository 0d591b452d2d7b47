#!/usr/bin/env bash
# darktable part: darktable (4.2 on Debian 12, 5.0 on Debian 13) with its Lua support,
# Xvfb and xauth so the GUI export test and the screenshot run headless, and exiftool for
# the metadata checks (the screenshot itself is taken with Pillow from the venv).
# Idempotent: only missing packages are installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(darktable xvfb xauth libimage-exiftool-perl fonts-dejavu-core)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
version="$(darktable-cli --version 2>&1 || true)"
echo "darktable part ready: ${version%%$'\n'*}"
