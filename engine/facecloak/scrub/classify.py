"""Name what a metadata tag gives away, so that ``--check`` reads as a list of risks."""

from __future__ import annotations

from facecloak.scrub.words import words

_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("location", ("gps", "geotiff", "location", "city", "country", "sublocation", "province")),
    ("preview image", ("thumbnail", "preview", "jpgfromraw", "mpimage", "mpf")),
    ("person", ("artist", "author", "creator", "owner", "copyright", "rights", "byline")),
    ("device", ("serial", "make", "model", "lens", "camera", "maker", "software", "firmware")),
    ("time", ("date", "time")),
    ("XMP", ("xmp",)),
    ("IPTC", ("iptc",)),
    ("Photoshop", ("photoshop",)),
    ("comment", ("comment", "description", "title", "keywords", "subject", "text")),
)
_MAKER_GROUPS = words(
    "Apple Canon Casio FujiFilm GE GoPro JVC Kodak Minolta Motorola Nikon Olympus Panasonic"
    " Pentax Ricoh Samsung Sanyo Sigma Sony FLIR InfiRay MakerNotes"
)


def classify(key: str) -> str:
    """A short category for exiftool's ``Group:Tag`` (``other`` when nothing matches)."""
    lowered = key.lower()
    group = key.partition(":")[0]
    if group in ("IFD1", "MPF0", "MPImage2", "MPImage3"):
        return "preview image"
    for kind, needles in _RULES:
        if any(needle in lowered for needle in needles):
            return kind
    if any(group.startswith(name) for name in _MAKER_GROUPS):
        return "device"
    if group in ("ExifIFD", "InteropIFD", "Composite"):
        return "camera settings"
    return "other"


def short(value: object, limit: int = 80) -> str:
    """A value as one short line (binary data is already summarised by exiftool)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
