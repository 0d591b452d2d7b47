#!/usr/bin/env bash
# Regenerate every picture in docs/img/ from the real programs, none by hand:
#   gimp3-filters-privacy-menu.png, gimp3-cloak-dialog.png   GIMP 3 under Xvfb (screenshot test)
#   gimp2-cloak-dialog.png                                   GIMP 2.10 under Xvfb (screenshot test)
#   darktable-lighttable.png, darktable-export-module.png    darktable's GUI export test
#   before-after.png                                         scripts/docs_before_after.py
# The tests run with FACECLOAK_DOCS_SCREENSHOTS=1, which makes them save into docs/img/. A step
# fails when its command fails or when it did not rewrite its pictures (a skipped test writes
# nothing: GIMP, darktable, Xvfb, xdotool or ImageMagick missing; .ci/setup.d/gimp.sh and
# .ci/setup.d/darktable.sh install them). Every step runs; the script exits non-zero if any
# failed. Needs the test and demo extras: scripts/setup-env.sh test,demo
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
IMG=docs/img
[ -x "$PY" ] || { echo "no $PY: run scripts/setup-env.sh test,demo first" >&2; exit 2; }
mkdir -p "$IMG"
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
failed=()

# step NAME PICTURES -- COMMAND...: run COMMAND, then check each picture was rewritten.
step() {
    local name=$1 pictures=() stale=() start status
    shift
    while [ "$1" != -- ]; do pictures+=("$1"); shift; done
    shift
    echo "== $name: $*"
    touch "$stamp"
    sleep 1  # mtimes are compared by the second on some file systems
    start=$SECONDS
    "$@"
    status=$?
    for picture in "${pictures[@]}"; do
        [ "$IMG/$picture" -nt "$stamp" ] || stale+=("$picture")
    done
    if [ "$status" -ne 0 ] || [ "${#stale[@]}" -ne 0 ]; then
        echo "== $name: FAILED (exit $status; not rewritten: ${stale[*]:-none})" >&2
        failed+=("$name")
    else
        echo "== $name: wrote ${pictures[*]} in $IMG/ ($((SECONDS - start)) s)"
    fi
}

export FACECLOAK_DOCS_SCREENSHOTS=1
step "GIMP 3 menu and dialog" gimp3-filters-privacy-menu.png gimp3-cloak-dialog.png -- \
    "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_gimp_screenshots.py::test_menu_entry_and_dialog_screenshots
step "GIMP 2.10 dialog" gimp2-cloak-dialog.png -- \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_gimp_screenshots.py::test_gimp2_dialog_screenshot
step "darktable lighttable and export module" darktable-lighttable.png darktable-export-module.png -- \
    "$PY" -m pytest -q -p no:cacheprovider "tests/test_darktable.py::test_gui_export_through_the_storage[host]"
step "before/after" before-after.png -- "$PY" scripts/docs_before_after.py

if [ "${#failed[@]}" -ne 0 ]; then
    echo "docs_images: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "docs_images: every picture in $IMG/ regenerated"
