#!/usr/bin/env python3
"""Write tiny, deterministic pretraining files in the original's four formats (plus its negative samples).

Coloured shapes as in ``make_tiny_dataset.py``: captions, questions, boxes and labels come from the drawing;
image codes are a deterministic function of the image centre (ints in [0, 8192), no VQGAN needed).

    python dataset/make_tiny_pretrain_data.py --out dataset/tiny/pretrain_data [--seed 0] [--image-size 96]

Files (the names of the original's pretrain_data_examples.zip):
    vision_language_examples.tsv  uniq-id, image, caption, question, answer, gt objects, dataset name, type
    text_examples.tsv             uniq-id, text
    image_examples.tsv            uniq-id, image (2 * code_image_size square), image codes of the centre
    detection_examples.tsv        uniq-id, image, x0,y0,x1,y1,object_id,object_name&&...
    negative_sample/              all_captions.txt, object.txt, type2ans.json
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.make_tiny_dataset import (  # noqa: E402
    BACKGROUND, CODE_BACKGROUND, CODE_FOR_COLOR, CODE_SHAPE_OFFSET, COLORS, COUNT_WORDS, PALETTE, SHAPES, SLOTS,
    canonical_caption, format_answers, gigaword_rows, image_to_base64, pick, random_specs, referring_expression,
    render_scene, scene_caption, shape_outline, split_rng, vqa_question, write_tsv,
)

ROWS = {"vision_language": 96, "text": 48, "image": 24, "detection": 24}
PAIR_TYPES = ("caption", "qa", "visual_grounding")
DATASET_NAMES = {"caption": ("coco", "cc12m"), "qa": ("vqa",), "visual_grounding": ("refcoco",)}
CODE_PATCH = 8  # VQGAN downsampling factor: one code per 8x8 pixels
NEGATIVE_OBJECTS = ("star", "heart", "cross", "ring")  # shapes never drawn, for caption negatives


def vision_language_rows(rng, n: int, image_size: int) -> list[list[str]]:
    """Caption, VQA and grounding rows in turn; the answer column holds VQA answers or the grounding box."""
    rows = []
    for i in range(n):
        pair_type = PAIR_TYPES[i % len(PAIR_TYPES)]
        specs = random_specs(rng, 1 if pair_type == "caption" else int(rng.integers(2, 4)), distinct_colors=True)
        image, objs = render_scene(rng, specs, image_size * 4 // 3, image_size)
        caption = question = answer = ""
        if pair_type == "caption":
            caption = canonical_caption(objs[0])
        elif pair_type == "qa":
            question, answers = vqa_question(rng, objs)
            answer = format_answers(answers)
        else:
            target = pick(rng, objs)
            caption = referring_expression(rng, target)
            answer = ",".join(str(v) for v in target.box)
        gt_objects = "&&".join(o.shape for o in objs if o.shape in caption + " " + question)
        rows.append([str(i + 1), image_to_base64(image, "JPEG"), caption, question, answer, gt_objects,
                     pick(rng, DATASET_NAMES[pair_type]), pair_type])
    return rows


def text_rows(rng, n: int) -> list[list[str]]:
    """News-like sentences and scene descriptions."""
    news = [source for source, _ in gigaword_rows(rng, "train", n)]
    rows = []
    for i in range(n):
        if i % 2:
            text = news[i].capitalize()
        else:
            _, objs = render_scene(rng, random_specs(rng, int(rng.integers(1, 4))), 48, 48)
            text = scene_caption(objs).capitalize()
        rows.append([str(i + 1), text])
    return rows


def centre_codes(image: Image.Image, code_image_size: int) -> list[int]:
    """Codes of the centre ``code_image_size`` square, one per 8x8 cell: the drawn colour's code (plus the shape
    offset of the row's shape) where the cell is mostly that colour, else the background code."""
    start = code_image_size // 2
    pixels = np.asarray(image, dtype=np.int64)[start:start + code_image_size, start:start + code_image_size]
    cells = code_image_size // CODE_PATCH
    codes = []
    for r in range(cells):
        for c in range(cells):
            cell = pixels[r * CODE_PATCH:(r + 1) * CODE_PATCH, c * CODE_PATCH:(c + 1) * CODE_PATCH].reshape(-1, 3)
            mean = cell.mean(axis=0)
            nearest = min(COLORS, key=lambda name: float(((np.array(PALETTE[name]) - mean) ** 2).sum()))
            close = float(((np.array(PALETTE[nearest]) - mean) ** 2).sum()) < 60 ** 2
            codes.append(CODE_FOR_COLOR[nearest] if close else CODE_BACKGROUND)
    return codes


def image_rows(rng, n: int, code_image_size: int) -> list[list[str]]:
    """A shape around the middle of a (2 * code_image_size) square image, and the codes of the centre."""
    side = code_image_size * 2
    rows = []
    for i in range(n):
        color, shape = pick(rng, COLORS), pick(rng, SHAPES)
        size = int(rng.integers(code_image_size // 2, code_image_size * 3 // 4 + 1))
        x0, y0 = (side - size) // 2 + rng.integers(-(size // 4), size // 4 + 1, size=2)
        image = Image.new("RGB", (side, side), BACKGROUND)
        shape_outline(ImageDraw.Draw(image), shape, int(x0), int(y0), size, fill=PALETTE[color])
        codes = [code + CODE_SHAPE_OFFSET[shape] if code != CODE_BACKGROUND else code
                 for code in centre_codes(image, code_image_size)]
        rows.append([str(i + 1), image_to_base64(image, "PNG"), " ".join(map(str, codes))])
    return rows


def detection_rows(rng, n: int, image_size: int) -> list[list[str]]:
    """Every drawn shape as ``x0,y0,x1,y1,object_id,object_name`` (id = shape index + 1, name = the shape)."""
    rows = []
    for i in range(n):
        image, objs = render_scene(rng, random_specs(rng, int(rng.integers(1, 4))), image_size * 4 // 3, image_size)
        boxes = "&&".join(f"{o.box[0]},{o.box[1]},{o.box[2]},{o.box[3]},{SHAPES.index(o.shape) + 1},{o.shape}"
                          for o in objs)
        rows.append([str(i + 1), image_to_base64(image, "JPEG"), boxes])
    return rows


def type2ans() -> dict[str, list[str]]:
    """Answers by type (the tiny VQA's question kinds); 'other' lists every answer."""
    types = {"what color": list(COLORS), "what shape": list(SHAPES), "how many": list(COUNT_WORDS),
             "yes/no": ["yes", "no"], "where": list(SLOTS)}
    types["other"] = [answer for answers in types.values() for answer in answers]
    return types


def make_tiny_pretrain_data(out_dir, seed: int = 0, image_size: int = 96, code_image_size: int = 128) -> dict:
    """Write the files under ``out_dir``; returns {name: path}."""
    if code_image_size % CODE_PATCH:
        raise ValueError(f"code_image_size must be a multiple of {CODE_PATCH}, got {code_image_size}")
    out_dir = Path(out_dir)
    vl = vision_language_rows(split_rng(seed, "pretrain_vision_language", "train"), ROWS["vision_language"],
                              image_size)
    files = {
        "vision_language": write_tsv(out_dir / "vision_language_examples.tsv", vl),
        "text": write_tsv(out_dir / "text_examples.tsv", text_rows(split_rng(seed, "pretrain_text", "train"),
                                                                    ROWS["text"])),
        "image": write_tsv(out_dir / "image_examples.tsv",
                           image_rows(split_rng(seed, "pretrain_image", "train"), ROWS["image"], code_image_size)),
        "detection": write_tsv(out_dir / "detection_examples.tsv",
                               detection_rows(split_rng(seed, "pretrain_detection", "train"), ROWS["detection"],
                                              image_size)),
    }
    negatives = out_dir / "negative_sample"
    negatives.mkdir(parents=True, exist_ok=True)
    captions = sorted({row[2] for row in vl if row[7] == "caption"})
    rng = split_rng(seed, "pretrain_negatives", "train")
    captions += [f"a {pick(rng, COLORS)} {pick(rng, NEGATIVE_OBJECTS)}" for _ in range(8)]
    files["all_captions"] = negatives / "all_captions.txt"
    files["all_captions"].write_text("".join(c + "\n" for c in captions), encoding="utf-8")
    files["object"] = negatives / "object.txt"
    files["object"].write_text("".join(o + "\n" for o in (*SHAPES, *NEGATIVE_OBJECTS)), encoding="utf-8")
    files["type2ans"] = negatives / "type2ans.json"
    files["type2ans"].write_text(json.dumps(type2ans(), indent=1) + "\n", encoding="utf-8")
    return files


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "tiny" / "pretrain_data"),
                        help="output folder (default: dataset/tiny/pretrain_data next to this script)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical files")
    parser.add_argument("--image-size", type=int, default=96,
                        help="height of vision-language and detection images (4/3 as wide)")
    parser.add_argument("--code-image-size", type=int, default=128,
                        help="image infilling images are twice this size; codes cover their centre")
    args = parser.parse_args(argv)
    for name, path in make_tiny_pretrain_data(args.out, args.seed, args.image_size, args.code_image_size).items():
        print(f"{name:16s} {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
