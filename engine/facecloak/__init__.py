"""facecloak: cloak faces in photos against facial-recognition trackers.

Python API::

    from facecloak import Engine
    engine = Engine()                       # loads the detector and the SFace + dlib ensemble
    report = engine.cloak_file("in.jpg", "out.jpg", "mid", seed=0)
    pixels, faces = engine.cloak_pixels(array, "mid")   # H x W x C uint8/uint16/float

See ``docs/engine.md`` for modes, budgets and what the reports contain.
"""

import os

# Intel MKL (torch's CPU BLAS) may pick differently rounding kernels from run to run unless
# asked for conditional numerical reproducibility; without it one server cloaked the same
# pixels with the same seed into two results (3 channels a level apart) in about 1 job of 10.
# MKL reads this on its first call, so setting it here, before any engine work, is enough; a
# user's own MKL_CBWR wins. Measured: no cost in speed (a `mid` cloak 7.7-8.6 s either way).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

__all__ = ["Engine", "__version__"]


def __getattr__(name: str):
    # Importing torch takes seconds; only pay for it when the engine is used.
    if name == "Engine":
        from facecloak.engine import Engine

        return Engine
    raise AttributeError(name)
