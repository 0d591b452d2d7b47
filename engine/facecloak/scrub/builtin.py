"""The built-in lossless filters, by format, and the orientation each format stores."""

from __future__ import annotations

from collections.abc import Callable

from facecloak.scrub import gif, jpeg, png, webp

# format -> (read the orientation, drop metadata keeping that orientation)
FILTERS: dict[str, tuple[Callable[[bytes], int], Callable[[bytes, int], bytes]]] = {
    "JPEG": (jpeg.orientation, jpeg.clean_jpeg),
    "PNG": (png.orientation, png.clean_png),
    "WEBP": (webp.orientation, webp.clean_webp),
    "GIF": (lambda _data: 1, lambda data, _orientation: gif.clean_gif(data)),
}
