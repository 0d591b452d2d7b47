#!/usr/bin/env bash
# darktable part: darktable (4.2 on Debian 12, 5.0 on Debian 13) with its Lua support,
# Xvfb and xauth so the GUI export test and the screenshot run headless, and exiftool for
# the metadata checks (the screenshot itself is taken with Pillow from the venv).
# On Debian 12 the tests also run darktable 5.0 from the Debian 13 root that
# debian13-root.sh builds (with bubblewrap), so both releases' darktable are tested.
# Idempotent: only missing packages are installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /etc/os-release
packages=(darktable xvfb xauth libimage-exiftool-perl fonts-dejavu-core)
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    packages+=(bubblewrap mmdebstrap ca-certificates)
fi
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
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    bash "$(dirname "$0")/debian13-root.sh"
    root=${FACECLOAK_DEBIAN13_ROOT:-${FACECLOAK_GIMP3_ROOT:-/opt/facecloak-ci/gimp3-root}}
    version="$(bwrap --ro-bind "$root" / --proc /proc --dev /dev darktable-cli --version 2>&1 \
        || true)"
    echo "darktable in the Debian 13 root: ${version%%$'\n'*}"
fi
