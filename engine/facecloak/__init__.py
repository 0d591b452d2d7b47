"""facecloak: cloak faces in photos against facial-recognition trackers.

Python API::

    from facecloak import Engine
    engine = Engine()                       # loads the detector and the SFace + dlib ensemble
    report = engine.cloak_file("in.jpg", "out.jpg", "mid", seed=0)
    pixels, faces = engine.cloak_pixels(array, "mid")   # H x W x C uint8/uint16/float

See ``docs/engine.md`` for modes, budgets and what the reports contain.
"""

__version__ = "0.1.0"

__all__ = ["Engine", "__version__"]


def __getattr__(name: str):
    # Importing torch takes seconds; only pay for it when the engine is used.
    if name == "Engine":
        from facecloak.engine import Engine

        return Engine
    raise AttributeError(name)
