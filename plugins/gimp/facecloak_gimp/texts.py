"""Names, menu places and words shown to the user, one copy for both GIMP versions."""

from __future__ import annotations

CLOAK_PROC = "plug-in-facecloak"
EXPORT_PROC = "plug-in-facecloak-export"
MENU = "<Image>/Filters/Privacy"  # the same sub-menu in GIMP 3 and GIMP 2.10
CLOAK_LABEL = "Cloak faces..."
EXPORT_LABEL = "Export cloaked copy..."
AUTHOR = "facecloak"
DATE = "2026"

MODES = ("low", "mid", "high")
MODE_HELP = {
    "low": "Faintest change, weakest protection",
    "mid": "Balanced (face-region SSIM >= 0.98)",
    "high": "Strongest protection, most visible",
}

CLOAK_BLURB = "Cloak the faces in this layer against face recognition"
CLOAK_HELP = (
    "Finds the faces in the active layer and changes their pixels slightly, so that face "
    "recognition trained on the photo learns the wrong face. Runs on this computer through the "
    "facecloak engine. One undo step. Files you export still carry metadata (GPS, camera "
    "serials): export them with 'Export cloaked copy...', which scrubs it."
)
SELECTION_HELP = "With a selection: cloak only the faces inside it (and change nothing outside)"
EXPORT_BLURB = "Export the image, then remove identifying metadata (GPS, camera serials, XMP)"
EXPORT_HELP = (
    "Exports a flattened copy of the image to the chosen file (the format follows its "
    "extension), then has the facecloak engine strip identifying metadata from it. The open "
    "image is not changed."
)
SCRUB_NOTE = (
    "Exported files keep metadata (GPS, camera serials, thumbnails). Use Filters > Privacy > "
    "Export cloaked copy... to export with it removed."
)
NO_FACES = "Cloak faces: no face was found in {where}; nothing was changed."
