"""Predictions drawn on their images (``predict.py --draw``, the demo's grid)."""
from __future__ import annotations

import textwrap
from typing import Sequence

from PIL import Image, ImageDraw


def describe(output: dict) -> str:
    """The text of a prediction: its caption, answer or label (boxes are drawn, not written)."""
    return " | ".join(str(output[key]) for key in ("caption", "answer", "label") if key in output)


def draw_prediction(image: Image.Image, output: dict, text: str | None = None,
                    truth_box: Sequence[float] | None = None) -> Image.Image:
    """A copy of ``image`` with the predicted box (red), the true box (green) and ``text`` in a band below."""
    image = image.convert("RGB")
    width = max(image.width, 160)
    lines = textwrap.wrap(text if text is not None else describe(output), width=max(width // 7, 10)) or [""]
    canvas = Image.new("RGB", (width, image.height + 12 * len(lines) + 6), "white")
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    line_width = max(1, min(image.size) // 100)
    if truth_box is not None:
        draw.rectangle([float(v) for v in truth_box], outline=(0, 200, 0), width=line_width)
    if "box" in output:
        draw.rectangle([float(v) for v in output["box"]], outline=(230, 0, 0), width=line_width)
    for i, line in enumerate(lines):
        draw.text((3, image.height + 3 + 12 * i), line, fill="black")
    return canvas
