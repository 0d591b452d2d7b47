"""What a scrub did, for people (one line) and for programs (``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Finding:
    """One piece of metadata: exiftool's ``Group:Tag``, a short value, and what it reveals."""

    tag: str
    value: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.tag} = {self.value}"


@dataclass
class ScrubReport:
    """The result of scrubbing one file.

    ``method`` says which path did the work: ``exiftool`` (exiftool, then the built-in
    segment filter), ``builtin`` (segment filter only: WebP, or JPEG/PNG/GIF without
    exiftool) or ``pillow`` (rewritten from pixels: BMP, PPM, TIFF without exiftool).
    ``lossless`` is True when the compressed image data was copied, not re-encoded.
    """

    source: str
    destination: str
    format: str
    method: str
    lossless: bool
    removed: list[Finding] = field(default_factory=list)
    orientation: int = 1
    sidecars: list[str] = field(default_factory=list)
    sidecars_deleted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["removed"] = [asdict(item) for item in self.removed]
        data["seconds"] = round(self.seconds, 4)
        return data

    def summary(self) -> str:
        kinds = sorted({item.kind for item in self.removed})
        what = f"removed {len(self.removed)} tag(s) ({', '.join(kinds)})" if kinds else "was clean"
        text = f"{self.source} -> {self.destination}: {self.format}, {what}, {self.method}"
        if not self.lossless:
            text += " (rewritten from pixels)"
        return text
