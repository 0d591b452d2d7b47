#!/usr/bin/env bash
# GIMP for the plug-in tests: GIMP 2.10 from apt on Debian 12, GIMP 3 from apt on Debian 13;
# on Debian 12 a Debian 13 root (mmdebstrap) supplies gimp-console-3.0. Xvfb, xdotool and
# ImageMagick take the user-guide screenshots. Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
ROOT=${FACECLOAK_GIMP3_ROOT:-/opt/facecloak-ci/gimp3-root}
# What the Debian 13 root (or a Debian 13 host) needs for GIMP 3, its Python and screenshots.
GIMP3_PACKAGES=gimp,python3-gi,gir1.2-gimp-3.0,xvfb,xauth,xdotool,imagemagick
. /etc/os-release

apt_install() {
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

apt-get update -qq
apt_install bubblewrap xvfb xauth xdotool imagemagick ca-certificates
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    apt_install gimp mmdebstrap
    marker="$ROOT/.facecloak-packages"
    if [ -x "$ROOT/usr/bin/gimp-console-3.0" ] && [ "$(cat "$marker" 2>/dev/null)" = "$GIMP3_PACKAGES" ]; then
        echo "GIMP 3 root already at $ROOT"
        exit 0
    fi
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "building a Debian 13 root with GIMP 3 at $ROOT from $mirror (about a minute)"
    mkdir -p "$(dirname "$ROOT")"
    rm -rf "$ROOT.new"
    mmdebstrap --quiet --variant=apt --include="$GIMP3_PACKAGES" trixie "$ROOT.new" "$mirror"
    echo "$GIMP3_PACKAGES" > "$ROOT.new/.facecloak-packages"
    rm -rf "$ROOT"
    mv "$ROOT.new" "$ROOT"
else
    # Debian 13 and later: GIMP 3 straight from apt (GIMP 2.10 is not packaged there).
    apt_install gimp python3-gi gir1.2-gimp-3.0
fi
