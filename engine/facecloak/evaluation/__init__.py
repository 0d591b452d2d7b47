"""Honest measurement of protection: the tracker's experiment (``facecloak eval``) and the
per-photo check (``facecloak verify``).

The tracker never sees the engine's crops: it re-detects and re-aligns every image itself, as a
scraper building a face database would.
"""
