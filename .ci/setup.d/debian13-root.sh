#!/usr/bin/env bash
# The Debian 13 (trixie) root for a Debian 12 host: GIMP 3 and darktable 5.0 are Debian 13
# packages, so on Debian 12 the tests run them from this root with bubblewrap
# (tests/gimp/harness.py, tests/darktable/harness.py). On Debian 13 and later the host's own
# packages are those versions (gimp.sh and darktable.sh install them) and nothing is built.
# gimp.sh and darktable.sh call this script; .ci/run runs it too, which is then a no-op.
# Idempotent: the root records its package list; a root with an older list is brought up to
# date in place (apt-get inside it), a missing or broken one is built with mmdebstrap.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
ROOT=${FACECLOAK_DEBIAN13_ROOT:-${FACECLOAK_GIMP3_ROOT:-/opt/facecloak-ci/gimp3-root}}
# GIMP 3 with its Python and the screenshot tools; darktable 5.0 with fonts for its GUI, and
# python3 for facecloak-client, which darktable's Lua runs inside the root.
PACKAGES=gimp,python3-gi,gir1.2-gimp-3.0,xvfb,xauth,xdotool,imagemagick
PACKAGES=$PACKAGES,darktable,python3,fonts-dejavu-core
. /etc/os-release

if [ "${VERSION_CODENAME:-}" != bookworm ]; then
    echo "Debian 13 root: not needed on ${PRETTY_NAME:-this system} (host packages are used)"
    exit 0
fi
marker="$ROOT/.facecloak-packages"
if [ "$(cat "$marker" 2>/dev/null)" = "$PACKAGES" ] && [ -x "$ROOT/usr/bin/gimp-console-3.0" ] \
    && [ -x "$ROOT/usr/bin/darktable-cli" ]; then
    echo "Debian 13 root already at $ROOT"
    exit 0
fi
command -v mmdebstrap >/dev/null && command -v bwrap >/dev/null || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends mmdebstrap bubblewrap ca-certificates >/dev/null
}

in_root() {  # run a command as root inside the root, with the host's DNS
    bwrap --bind "$ROOT" / --proc /proc --dev /dev \
        --ro-bind /etc/resolv.conf /etc/resolv.conf \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

if [ -x "$ROOT/usr/bin/apt-get" ] && [ -e "$marker" ]; then
    echo "updating the Debian 13 root at $ROOT to: $PACKAGES"
    if in_root apt-get update -qq \
        && in_root apt-get install -y -qq --no-install-recommends ${PACKAGES//,/ } >/dev/null \
        && in_root apt-get clean; then
        echo "$PACKAGES" > "$marker"
        exit 0
    fi
    echo "updating in place failed; building the root again"
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "building a Debian 13 root at $ROOT from $mirror (a few minutes)"
mkdir -p "$(dirname "$ROOT")"
rm -rf "$ROOT.new"
mmdebstrap --quiet --variant=apt --include="$PACKAGES" trixie "$ROOT.new" "$mirror"
echo "$PACKAGES" > "$ROOT.new/.facecloak-packages"
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
