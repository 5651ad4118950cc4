#!/usr/bin/env python3
"""Print one TSV row's columns, save its image, and draw its box (RefCOCO-style ``x0,y0,x1,y1`` columns).

    python dataset/inspect_row.py data/refcoco_val.tsv 12 --save row12.png
"""
from __future__ import annotations

import argparse
import os
import re
import sys

if __package__ in (None, ""):  # run as a script: the repository root is the import root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PIL import ImageDraw  # noqa: E402

from data.images import decode_base64_image  # noqa: E402
from data.file_dataset import FileDataset  # noqa: E402

_BOX = re.compile(r"^\s*-?[\d.]+(,\s*-?[\d.]+){3}\s*$")
MAX_TEXT = 200


def describe_row(path: str, row: int) -> tuple[list[str], object, list[float] | None]:
    """(one line per column, the first image column's PIL image or None, the first box column or None)."""
    reader = FileDataset(path, slice_id=0, slice_count=1)
    if not 0 <= row < len(reader):
        raise SystemExit(f"inspect_row.py: error: {path} has rows 0..{len(reader) - 1}, not {row}")
    lines, image, box = [], None, None
    for column, value in enumerate(reader[row]):
        shown = value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"... ({len(value)} characters)"
        if len(value) > 100:  # short fields are never images
            try:
                decoded = decode_base64_image(value)
                shown = f"<image {decoded.width}x{decoded.height} {decoded.format} {decoded.mode}, base64 of " \
                        f"{len(value) * 3 // 4} bytes>"
                image = decoded if image is None else image
            except ValueError:
                pass
        if box is None and _BOX.match(value):
            box = [float(v) for v in value.split(",")]
        if "&&" in value and not shown.startswith("<image"):
            shown += f"   [{value.count('&&') + 1} items joined by &&]"
        lines.append(f"column {column}: {shown}")
    return lines, image, box


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tsv")
    parser.add_argument("row", type=int, help="row number, from 0 (line row + 1)")
    parser.add_argument("--save", help="where to save the row's image (default: <tsv name>_row<N>.png here)")
    args = parser.parse_args(argv)
    try:
        lines, image, box = describe_row(args.tsv, args.row)
    except (OSError, ValueError) as err:
        raise SystemExit(f"inspect_row.py: error: {err}") from None
    print(f"{args.tsv}: row {args.row}")
    print("\n".join(lines))
    if image is not None:
        image = image.convert("RGB")
        if box is not None:
            ImageDraw.Draw(image).rectangle(box, outline=(230, 0, 0), width=max(1, min(image.size) // 100))
        save = args.save or f"{os.path.splitext(os.path.basename(args.tsv))[0]}_row{args.row}.png"
        image.save(save)
        print(f"saved the image{' with its box' if box is not None else ''} to {save}")


if __name__ == "__main__":
    main()
