"""The options that define an output: change any of them and finished files are redone."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from facecloak.budget import CloakBudget

FORMATS = ("same", "jpeg", "png")


@dataclass(frozen=True)
class BatchSettings:
    """What every file of a batch is cloaked with; picklable so Ray workers get it as is."""

    budget: CloakBudget
    seed: int = 0
    models: tuple[str, ...] = ("sface", "dlib")
    device: str = "cpu"
    jpeg_quality: int = 95
    output_format: str = "same"
    cloak: bool = True  # False: scrub only (the file's own bytes, metadata removed)

    def fingerprint(self) -> str:
        """A short hash of everything that changes an output's pixels or format."""
        data = asdict(self)
        data.pop("device")  # the same cloak on any device
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
