#!/usr/bin/env bash
# GIMP for the plug-in tests: GIMP 2.10 from apt on Debian 12, GIMP 3 from apt on Debian 13;
# on Debian 12 the Debian 13 root that debian13-root.sh builds (mmdebstrap) supplies
# gimp-console-3.0. Xvfb, xdotool and ImageMagick take the user-guide screenshots.
# Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /etc/os-release

apt_install() {
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

apt-get update -qq
apt_install bubblewrap xvfb xauth xdotool imagemagick ca-certificates
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    apt_install gimp mmdebstrap
    bash "$(dirname "$0")/debian13-root.sh"
else
    # Debian 13 and later: GIMP 3 straight from apt (GIMP 2.10 is not packaged there).
    apt_install gimp python3-gi gir1.2-gimp-3.0
fi
