"""Metadata scrubbing: files that leave nothing behind but their pixels and colour profile.

Public API::

    from facecloak.scrub import scrub_file, check_file, ScrubError
    report = scrub_file("in.jpg", "out.jpg")          # lossless where the format allows
    findings = check_file("photo.jpg")                # what identifying metadata it carries

One job per module: ``formats`` (what a file is, raw files refused), ``exiftool`` (one
``-stay_open`` process), ``tool_pass`` (the exiftool path), ``jpeg``/``png``/``webp``/``gif``
(built-in lossless segment filters), ``pillow_pass`` (rewrite from pixels), ``allowlist``
(what may remain), ``check``, ``sidecars``, ``atomic``, ``scrubber``.  See ``docs/scrub.md``.
"""

from facecloak.scrub.check import check_file
from facecloak.scrub.errors import ScrubError
from facecloak.scrub.report import Finding, ScrubReport
from facecloak.scrub.scrubber import scrub_file

__all__ = ["Finding", "ScrubError", "ScrubReport", "check_file", "scrub_file"]
