"""Code the GIMP 3 and GIMP 2.10 plug-ins share: texts, pixel plumbing, engine calls, export.

Standard library only (Python 3.8+): it runs in whatever Python GIMP finds, never in the
engine's environment. Each plug-in file adapts its GIMP API to the small interfaces here.
"""
