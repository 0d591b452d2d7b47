#!/usr/bin/env python3
"""Make the user guide's before/after picture (docs/img/before-after.png) with the real engine.

    .venv/bin/python scripts/docs_before_after.py            # needs the demo extra:
                                                             # scripts/setup-env.sh test,demo

Cloaks the public-domain astronaut photo that scikit-image ships (or --input PHOTO) in mode
mid on the CPU with seed 0, which is bit-for-bit repeatable, and writes one labelled picture:
the whole photo before, after and the amplified difference, and below them the face magnified.
It prints the figures quoted under the picture in docs/user-guide.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
AMPLIFY = 10  # the difference is faint: x10 around mid-grey, so that it shows at all
ZOOM = 3  # the face row: nearest-neighbour, every pixel of the cloak visible
LABEL_HEIGHT = 34
GAP = 12


def astronaut() -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is missing: scripts/setup-env.sh demo (or pass --input PHOTO)")
    return np.ascontiguousarray(data.astronaut()[..., :3])


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def panel(pixels: np.ndarray, label: str) -> Image.Image:
    """One picture with its label in a white band above it."""
    image = Image.fromarray(pixels)
    framed = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    framed.paste(image, (0, LABEL_HEIGHT))
    ImageDraw.Draw(framed).text((4, 6), label, fill="black", font=font(20))
    return framed


def row(panels: list[Image.Image]) -> Image.Image:
    width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
    strip = Image.new("RGB", (width, max(p.height for p in panels)), "white")
    x = 0
    for p in panels:
        strip.paste(p, (x, 0))
        x += p.width + GAP
    return strip


def difference(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    change = after.astype(np.int16) - before.astype(np.int16)
    return np.clip(128 + change * AMPLIFY, 0, 255).astype(np.uint8)


def compose(before: np.ndarray, after: np.ndarray, box, mode: str, caption: str) -> Image.Image:
    top = row([
        panel(before, "before"),
        panel(after, f"after (mode {mode})"),
        panel(difference(before, after), f"difference x{AMPLIFY}"),
    ])  # fmt: skip
    x, y, w, h = box
    pad = int(max(w, h) * 0.15)
    y0, y1 = max(0, y - pad), min(before.shape[0], y + h + pad)
    x0, x1 = max(0, x - pad), min(before.shape[1], x + w + pad)

    def zoom(pixels: np.ndarray) -> np.ndarray:
        return pixels[y0:y1, x0:x1].repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)

    bottom = row([
        panel(zoom(before), f"before: face, {ZOOM}x"),
        panel(zoom(after), f"after: face, {ZOOM}x"),
        panel(zoom(difference(before, after)), f"difference x{AMPLIFY}: face, {ZOOM}x"),
    ])  # fmt: skip
    width = max(top.width, bottom.width)
    sheet = Image.new("RGB", (width, top.height + GAP + bottom.height + 40), "white")
    sheet.paste(top, ((width - top.width) // 2, 0))
    sheet.paste(bottom, ((width - bottom.width) // 2, top.height + GAP))
    ImageDraw.Draw(sheet).text((4, sheet.height - 32), caption, fill="black", font=font(18))
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="a photo (default: scikit-image's astronaut)")
    parser.add_argument("--mode", default="mid", choices=("low", "mid", "high"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "before-after.png")
    args = parser.parse_args(argv)

    from facecloak import Engine
    from facecloak.imageio import load_image

    before = load_image(args.input).pixels[..., :3] if args.input else astronaut()
    if before.dtype != np.uint8:
        sys.exit("--input: an 8-bit photo, please")
    engine = Engine(device="cpu")
    started = time.perf_counter()
    after, faces = engine.cloak_pixels(before, args.mode, seed=0)
    seconds = time.perf_counter() - started
    cloaked = [face for face in faces if face.cloaked]
    if not cloaked:
        sys.exit("no face was cloaked in that photo")
    face = max(cloaked, key=lambda f: f.box[2] * f.box[3])
    change = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
    x, y, w, h = face.box
    in_face = change[max(0, y) : y + h, max(0, x) : x + w]
    figures = (  # no timing in the picture: it must come out the same on every machine
        f"{before.shape[1]}x{before.shape[0]} px, {len(cloaked)} face(s) cloaked; "
        f"face SSIM {face.ssim:.3f}; largest change "
        f"{int(change.max())}/255; {100 * (in_face > 0).mean():.0f} % of the face's pixels "
        f"changed, {100 * (change > 0).mean():.0f} % of the photo's"
    )
    sheet = compose(before, after, face.box, args.mode, f"facecloak {args.mode}: {figures}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: {figures}; {seconds:.1f} s on this CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
