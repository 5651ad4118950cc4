#!/usr/bin/env python3
"""Write a tiny, deterministic, learnable synthetic benchmark in the original OFA TSV formats.

Images are coloured shapes on a plain background; every caption, answer, box and label is a
deterministic function of the image (or of the text for the text-only tasks), so a tiny model
finetuned on CPU for a few minutes beats chance. Column layouts follow the original OFA data
files (see ``dataset/README.md``). Only numpy and Pillow are needed.

    python dataset/make_tiny_dataset.py --out dataset/tiny [--seed 0] [--tasks caption,vqa] [--image-size 96]
"""
import argparse
import base64
import functools
import json
import unicodedata
import pickle
import zlib
from collections import defaultdict
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SPLITS = ("train", "valid", "test")
# First uniq-id of each split, so ids never collide across splits.
ID_BASE = {"train": 0, "valid": 10000, "test": 20000}
# image-id = uniq-id + this, so a loader that mixes up the two columns is noticed.
IMAGE_ID_OFFSET = 50000

BACKGROUND = (240, 240, 240)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
    "purple": (150, 50, 190),
}
COLORS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "diamond")
SLOTS = ("left", "center", "right")  # horizontal thirds of the image
COUNT_WORDS = ("1", "2", "3")  # VQA answers counts as digits
GLUE_TASKS = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2")
IMAGE_TASKS = ("caption", "vqa", "refcoco", "snli_ve", "image_classify", "caption_cn", "refcoco_cn", "ocr")
ALL_TASKS = IMAGE_TASKS + ("gigaword",) + GLUE_TASKS + ("image_gen",)

# Rows per split; small enough for minutes of CPU finetuning, large enough to beat chance.
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "caption": {"train": 256, "valid": 32, "test": 32},
    "vqa": {"train": 512, "valid": 64, "test": 64},
    "refcoco": {"train": 1024, "valid": 32, "test": 96},
    "snli_ve": {"train": 384, "valid": 48, "test": 48},
    "image_classify": {"train": 240, "valid": 40, "test": 40},
    "gigaword": {"train": 256, "valid": 32, "test": 32},
    "image_gen": {"train": 128, "valid": 16, "test": 16},
    "caption_cn": {"train": 128, "valid": 16, "test": 16},
    "refcoco_cn": {"train": 128, "valid": 16, "test": 16},
    "ocr": {"train": 256, "valid": 32, "test": 32},
    **{name: {"train": 256, "valid": 32, "test": 32} for name in GLUE_TASKS},
}

# refcoco scenes: shapes 40-48% of the image height (capped by the slot width), tops within the middle 30% of
# the free height, so that ofa_tiny learns to ground from scratch within the demo's budget
REFCOCO_SIZE_RANGE, REFCOCO_Y_SPREAD = (0.40, 0.48), 0.3

# image_gen: the code grid of the original (256px image, VQGAN factor 8 -> 32x32 = 1024 codes).
CODE_GRID = 32
CODE_BACKGROUND = 4096
CODE_FOR_COLOR = {"red": 1021, "green": 2347, "blue": 3583, "yellow": 5119, "purple": 6701}
CODE_SHAPE_OFFSET = {"circle": 0, "square": 1, "triangle": 2, "diamond": 3}


# ---------------------------------------------------------------- scenes and images

@dataclass(frozen=True)
class DrawnShape:
    """One shape of a scene and the exact pixel extent it was drawn with."""

    color: str
    shape: str
    slot: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 with x1/y1 exclusive


def where(slot: str) -> str:
    """Position phrase for a slot: 'on the left', 'in the center', 'on the right'."""
    return "in the center" if slot == "center" else f"on the {slot}"


def shape_outline(draw: ImageDraw.ImageDraw, shape: str, x0: int, y0: int, size: int, fill) -> None:
    """Draw `shape` filling the square of side `size` whose top-left corner is (x0, y0)."""
    x1, y1 = x0 + size - 1, y0 + size - 1
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    elif shape == "square":
        draw.rectangle([x0, y0, x1, y1], fill=fill)
    elif shape == "triangle":
        draw.polygon([(xm, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(xm, y0), (x1, ym), (xm, y1), (x0, ym)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_scene(
    rng: np.random.Generator,
    specs: Sequence[tuple[str, str, str]],
    width: int,
    height: int,
    size_range: tuple[float, float] = (0.22, 0.30),
    y_spread: float = 1.0,
) -> tuple[Image.Image, list[DrawnShape]]:
    """Draw (color, shape, slot) specs, one shape per horizontal third, with jittered size and position; the top
    edge moves over the central ``y_spread`` fraction of the free height."""
    if len({slot for _, _, slot in specs}) != len(specs):
        raise ValueError(f"two shapes share a slot: {specs}")
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    slot_width = width / len(SLOTS)
    drawn = []
    for color, shape, slot in specs:
        lo, hi = round(size_range[0] * height), round(size_range[1] * height)
        size = min(int(rng.integers(lo, hi + 1)), int(slot_width) - 4)
        left = SLOTS.index(slot) * slot_width
        x0 = int(rng.integers(int(left) + 2, int(left + slot_width) - size - 1))
        free = height - size - 3
        y_lo = 2 + round(free * (1 - y_spread) / 2)
        y0 = int(rng.integers(y_lo, y_lo + max(1, round(free * y_spread))))
        mask_image = Image.new("L", (width, height), 0)
        shape_outline(ImageDraw.Draw(mask_image), shape, x0, y0, size, fill=255)
        mask = np.asarray(mask_image) > 0
        pixels[mask] = PALETTE[color]
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        drawn.append(DrawnShape(color, shape, slot, box))
    return Image.fromarray(pixels, "RGB"), drawn


def image_to_base64(image: Image.Image, fmt: str) -> str:
    """Encode an image as a standard-alphabet base64 string (JPEG quality 90 without chroma subsampling, or PNG)."""
    buffer = BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=90, subsampling=0)
    elif fmt == "PNG":
        image.save(buffer, format="PNG")
    else:
        raise ValueError(f"unsupported image format {fmt!r}")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def random_specs(rng: np.random.Generator, count: int, distinct_colors: bool = False) -> list[tuple[str, str, str]]:
    """`count` shapes with distinct shapes in distinct slots (left to right); colours may repeat."""
    slots = sorted(rng.choice(len(SLOTS), size=count, replace=False).tolist())
    shapes = rng.choice(len(SHAPES), size=count, replace=False).tolist()
    colors = rng.choice(len(COLORS), size=count, replace=not distinct_colors).tolist()
    return [(COLORS[c], SHAPES[s], SLOTS[p]) for c, s, p in zip(colors, shapes, slots)]


def pick(rng: np.random.Generator, options: Sequence):
    """One element of `options`, drawn with `rng`."""
    return options[int(rng.integers(len(options)))]


# ---------------------------------------------------------------- image tasks

def canonical_caption(obj: DrawnShape) -> str:
    """The one training caption of a single-shape image."""
    return f"a {obj.color} {obj.shape} {where(obj.slot)}"


def reference_captions(obj: DrawnShape) -> list[str]:
    """Evaluation references (the canonical caption first), like COCO's several captions per image."""
    return [
        canonical_caption(obj),
        f"a {obj.color} {obj.shape}",
        f"there is a {obj.color} {obj.shape} {where(obj.slot)}",
        f"a {obj.shape} colored {obj.color} {where(obj.slot)}",
    ]


def caption_rows(rng, split, n, image_size, canonical: Callable = canonical_caption,
                 references: Callable = reference_captions):
    """uniq-id, image-id, caption (refs joined by && outside train), object labels, image."""
    rows = []
    for i in range(n):
        uniq_id = ID_BASE[split] + i + 1
        image, (obj,) = render_scene(rng, random_specs(rng, 1), image_size, image_size)
        caption = canonical(obj) if split == "train" else "&&".join(references(obj))
        rows.append([str(uniq_id), str(uniq_id + IMAGE_ID_OFFSET), caption, obj.shape, image_to_base64(image, "JPEG")])
    return rows


def vqa_question(rng, objs: list[DrawnShape]) -> tuple[str, dict[str, float]]:
    """A colour/shape/count/existence/position question about the scene and its answer confidences."""
    kind = pick(rng, ("color", "shape", "count", "exists", "where"))
    target = pick(rng, objs)
    if kind == "color":
        return f"what color is the {target.shape}?", {target.color: 1.0}
    if kind == "shape":
        return f"what shape is {where(target.slot)}?", {target.shape: 1.0}
    if kind == "where":
        return f"where is the {target.shape}?", {target.slot: 1.0}
    if kind == "count":
        count = len(objs)
        answers = {COUNT_WORDS[count - 1]: 1.0}
        if count > 1:  # annotators disagreeing by one, as in VQA's soft scores
            answers[COUNT_WORDS[count - 2]] = 0.3
        return "how many shapes are there?", answers
    present = {(o.color, o.shape) for o in objs}
    if rng.random() < 0.5:
        return f"is there a {target.color} {target.shape}?", {"yes": 1.0}
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    color, shape = pick(rng, absent)
    return f"is there a {color} {shape}?", {"no": 1.0}


def format_answers(answers: dict[str, float]) -> str:
    """VQA answer column: `conf|!+answer` items joined by `&&`."""
    return "&&".join(f"{conf:.1f}|!+{answer}" for answer, conf in answers.items())


def vqa_rows(rng, split, n, image_size):
    """question-id, image-id, question, answers with confidence, object labels, image."""
    rows = []
    for i in range(n):
        question_id = ID_BASE[split] + i + 1
        specs = random_specs(rng, int(rng.integers(1, len(SLOTS) + 1)))
        image, objs = render_scene(rng, specs, image_size, image_size)
        question, answers = vqa_question(rng, objs)
        labels = "&&".join(o.shape for o in objs)
        rows.append([str(question_id), str(question_id + IMAGE_ID_OFFSET), question, format_answers(answers),
                     labels, image_to_base64(image, "JPEG")])
    return rows


def vqa_candidate_answers() -> list[str]:
    """Every answer the generator can produce, in the fixed order of the ans2label pickle."""
    return ["yes", "no", *COLORS, *SHAPES, *COUNT_WORDS, *SLOTS]


def referring_expression(rng, obj: DrawnShape) -> str:
    """A phrase that singles out `obj` (shapes and colours are unique within a refcoco scene)."""
    return pick(rng, (
        f"the {obj.color} {obj.shape}",
        f"{obj.color} {obj.shape} {where(obj.slot)}",
        f"the {obj.shape} {where(obj.slot)}",
        f"the {obj.color} one",
    ))


def refcoco_rows(rng, split, n, image_size, rows_per_image: int = 2, expression: Callable = referring_expression):
    """uniq-id, image-id, text, region-coord x0,y0,x1,y1, image; up to ``rows_per_image`` texts, each about another
    shape, per (non-square) image of one or two large shapes at about the same height: a box is right when the model
    finds the shape (alone in its image, or named by colour, shape or position beside another)."""
    rows = []
    width, height = image_size * 4 // 3, image_size
    image_id = ID_BASE[split] + IMAGE_ID_OFFSET
    while len(rows) < n:
        image_id += 1
        specs = random_specs(rng, int(rng.integers(1, 3)), distinct_colors=True)
        image, objs = render_scene(rng, specs, width, height, REFCOCO_SIZE_RANGE, REFCOCO_Y_SPREAD)
        image_b64 = image_to_base64(image, "PNG")
        targets = rng.choice(len(objs), size=min(rows_per_image, len(objs)), replace=False)
        for k, t in enumerate(targets.tolist()):
            obj = objs[t]
            box = ",".join(f"{v:.2f}" for v in obj.box)
            rows.append([f"{image_id}_{k + 1}", str(image_id), expression(rng, obj), box, image_b64])
    return shuffled(rng, rows[:n])


NEUTRAL_PROPERTIES = ("made of wood", "made of metal", "made of paper", "heavy", "brand new", "very old")


def snli_hypothesis(rng, objs: list[DrawnShape], label: str) -> str:
    """An entailed, contradicted or undecidable (neutral) statement about the scene."""
    obj = pick(rng, objs)
    if label == "entailment":
        return pick(rng, (f"there is a {obj.color} {obj.shape}.", f"a {obj.color} {obj.shape} is {where(obj.slot)}.",
                          f"the image shows a {obj.shape}."))
    if label == "neutral":
        return f"the {obj.color} {obj.shape} is {pick(rng, NEUTRAL_PROPERTIES)}."
    # contradiction: shapes are unique per scene, so a wrong colour or slot for a present shape is false
    if rng.random() < 0.5:
        color = pick(rng, [c for c in COLORS if c != obj.color])
        return f"there is a {color} {obj.shape}."
    slot = pick(rng, [s for s in SLOTS if s != obj.slot])
    return f"a {obj.color} {obj.shape} is {where(slot)}."


def scene_caption(objs: list[DrawnShape]) -> str:
    """Premise: every shape of the scene, left to right."""
    return " and ".join(canonical_caption(o) for o in objs) + "."


def snli_ve_rows(rng, split, n, image_size):
    """uniq-id, image-id, image, hypothesis, caption (premise), label; one row per label per image."""
    labels = ("entailment", "neutral", "contradiction")
    rows = []
    for i in range((n + len(labels) - 1) // len(labels)):
        image_id = ID_BASE[split] + i + 1 + IMAGE_ID_OFFSET
        image, objs = render_scene(rng, random_specs(rng, int(rng.integers(1, 3))), image_size, image_size)
        image_b64 = image_to_base64(image, "JPEG")
        for k, label in enumerate(labels):
            rows.append([f"{image_id}.jpg#{k}", str(image_id), image_b64, snli_hypothesis(rng, objs, label),
                         scene_caption(objs), label])
    return shuffled(rng, rows[:n])


def class_names() -> list[str]:
    """image_classify classes in label order (label = position + 1, like synset_words.txt)."""
    return [f"{color} {shape}" for color in COLORS for shape in SHAPES]


def image_classify_rows(rng, split, n, image_size):
    """image, label (1-indexed), synset words; classes are balanced and cycle through all colour-shape pairs."""
    names = class_names()
    rows = []
    order = rng.permutation(n) % len(names)
    for class_index in order.tolist():
        color, shape = names[class_index].split()
        image, _ = render_scene(rng, [(color, shape, pick(rng, SLOTS))], image_size, image_size, (0.25, 0.32))
        rows.append([image_to_base64(image, "JPEG"), str(class_index + 1), names[class_index]])
    return rows


# ---------------------------------------------------------------- text tasks

PLACES = ("springfield", "riverside", "lakeview", "northport", "greenville", "oakland", "fairview", "westbrook")
ORGANISATIONS = ("city council", "central bank", "football club", "university", "health ministry", "airline",
                 "oil company", "police department", "school board", "trade union")
ACTIONS = (("raise", "taxes"), ("cut", "prices"), ("hire", "workers"), ("close", "offices"),
           ("build", "stadium"), ("sell", "shares"), ("expand", "services"), ("review", "budget"))
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def gigaword_rows(rng, split, n):
    """source, target: a wordy news sentence and its headline (all headline words are copied from it)."""
    rows = []
    for _ in range(n):
        place, org, day = pick(rng, PLACES), pick(rng, ORGANISATIONS), pick(rng, DAYS)
        verb, thing = pick(rng, ACTIONS)
        template = int(rng.integers(3))
        if template == 0:
            source = (f"the {org} of {place} said on {day} that it plans to {verb} {thing} by #.# percent "
                      "next year , a spokesman said .")
        elif template == 1:
            source = (f"officials in {place} said the local {org} plans to {verb} {thing} , according to a "
                      f"statement released on {day} .")
        else:
            source = (f"the {place} {org} is set to {verb} {thing} as part of a new plan announced {day} , "
                      f"sources close to the {org} said .")
        rows.append([source, f"{place} {org} to {verb} {thing}"])
    return rows


NOUNS = ("cat", "dog", "teacher", "farmer", "child", "doctor", "bird", "student", "artist", "pilot")
ADJECTIVES = ("small", "happy", "old", "young", "quiet", "tall", "busy", "clever")
VERBS = ("sees", "follows", "helps", "finds", "watches", "calls", "visits", "greets")
SYNONYMS = {"sees": "notices", "follows": "trails", "helps": "assists", "finds": "discovers",
            "watches": "observes", "calls": "phones", "visits": "drops in on", "greets": "welcomes"}
PLACES_NEAR = ("park", "garden", "station", "library", "market", "river")
ACTIVITIES = ("sleeping", "running", "eating", "reading", "singing", "waiting")
POSITIVE = ("wonderful", "brilliant", "delightful", "moving", "charming", "great")
NEGATIVE = ("boring", "awful", "dull", "terrible", "clumsy", "tedious")
ATTRIBUTES = {"color": ("red", "blue", "green", "black"), "size": ("large", "tiny", "huge", "small")}


def with_article(phrase: str) -> str:
    """'a'/'an' + phrase."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def simple_sentence(rng) -> tuple[str, str, str, str]:
    """(subject noun, verb, object noun, adjective) for 'the adj subject verb the object'."""
    subject, obj = rng.choice(len(NOUNS), size=2, replace=False).tolist()
    return NOUNS[subject], pick(rng, VERBS), NOUNS[obj], pick(rng, ADJECTIVES)


def cola_row(rng, i):
    """id, sentence, label: 1 grammatical, 0 with the determiners moved after their nouns."""
    subject, verb, obj, adj = simple_sentence(rng)
    if rng.random() < 0.5:
        return [str(i), f"the {adj} {subject} {verb} the {obj} .", "1"]
    return [str(i), f"{adj} {subject} the {verb} {obj} the .", "0"]


def sst2_row(rng, i):
    """sentence, label: 1 positive, 0 negative (decided by the single sentiment adjective)."""
    subject = pick(rng, ("the movie", "this film", "the story", "the acting", "the soundtrack"))
    positive = rng.random() < 0.5
    word = pick(rng, POSITIVE if positive else NEGATIVE)
    return [f"{subject} was {word} from start to finish .", "1" if positive else "0"]


def mnli_row(rng, i):
    """sentence1, sentence2, label: '1' entailment, '0' neutral, '2' contradiction (the original's ids)."""
    noun, adj, place = pick(rng, NOUNS), pick(rng, ADJECTIVES), pick(rng, PLACES_NEAR)
    activity = pick(rng, ACTIVITIES)
    premise = f"{with_article(adj + ' ' + noun)} is {activity} in the {place} ."
    label = pick(rng, ("0", "1", "2"))
    if label == "1":
        hypothesis = f"{with_article(noun)} is {activity} ."
    elif label == "0":
        hypothesis = f"the {noun} is {activity} because it is {pick(rng, ('tired', 'bored', 'hungry'))} ."
    else:
        hypothesis = f"the {noun} is {pick(rng, [a for a in ACTIVITIES if a != activity])} ."
    return [premise, hypothesis, label]


def mrpc_row(rng, i):
    """sentence1, sentence2, label: 1 when sentence2 only swaps the verb for a synonym."""
    subject, verb, obj, adj = simple_sentence(rng)
    first = f"the {adj} {subject} {verb} the {obj} in the morning ."
    if rng.random() < 0.5:
        return [first, f"in the morning the {adj} {subject} {SYNONYMS[verb]} the {obj} .", "1"]
    other = pick(rng, [n for n in NOUNS if n not in (subject, obj)])
    return [first, f"in the morning the {adj} {subject} {SYNONYMS[verb]} the {other} .", "0"]


def qnli_row(rng, i):
    """index, question, sentence, label: entailment when the sentence states the asked attribute of the asked noun."""
    noun, attribute = pick(rng, NOUNS), pick(rng, tuple(ATTRIBUTES))
    question = f"what {attribute} is the {noun} ?"
    if rng.random() < 0.5:
        return [str(i), question, f"the {noun} is {pick(rng, ATTRIBUTES[attribute])} .", "entailment"]
    other_attribute = "size" if attribute == "color" else "color"
    return [str(i), question, f"the {noun} is {pick(rng, ATTRIBUTES[other_attribute])} .", "not_entailment"]


def qqp_row(rng, i):
    """id, qid1, qid2, question1, question2, is_duplicate: duplicates ask about the same noun in other words."""
    noun, other = rng.choice(len(NOUNS), size=2, replace=False).tolist()
    first = f"how can i become a better {NOUNS[noun]} ?"
    duplicate = rng.random() < 0.5
    second = f"what should i do to improve as {with_article(NOUNS[noun if duplicate else other])} ?"
    return [str(i), str(2 * i + 1), str(2 * i + 2), first, second, "1" if duplicate else "0"]


def rte_row(rng, i):
    """index, sentence1, sentence2, label: entailment when sentence2 restates who did what to whom."""
    subject, verb, obj, adj = simple_sentence(rng)
    town, spot = pick(rng, PLACES), pick(rng, PLACES_NEAR)
    first = f"yesterday the {adj} {subject} from {town} {verb} the {obj} near the {spot} ."
    if rng.random() < 0.5:
        return [str(i), first, f"the {subject} {verb} the {obj} .", "entailment"]
    return [str(i), first, f"the {obj} {verb} the {subject} .", "not_entailment"]


GLUE_ROW_MAKERS: dict[str, Callable] = {
    "cola": cola_row, "mnli": mnli_row, "mrpc": mrpc_row, "qnli": qnli_row,
    "qqp": qqp_row, "rte": rte_row, "sst2": sst2_row,
}


def glue_rows(name: str):
    """Rows maker for one GLUE task."""
    def make(rng, split, n):
        return [GLUE_ROW_MAKERS[name](rng, ID_BASE[split] + i) for i in range(n)]
    return make


def caption_to_codes(color: str, shape: str, slot: str) -> list[int]:
    """1024 image codes (32x32, row-major) of a fixed-size shape: a deterministic function of the caption."""
    grid = Image.new("L", (CODE_GRID, CODE_GRID), 0)
    size = 8  # fits a third of the grid
    x0 = SLOTS.index(slot) * CODE_GRID // 3 + (CODE_GRID // 3 - size) // 2
    shape_outline(ImageDraw.Draw(grid), shape, x0, (CODE_GRID - size) // 2, size, fill=255)
    mask = np.asarray(grid) > 0
    codes = np.full((CODE_GRID, CODE_GRID), CODE_BACKGROUND, dtype=np.int64)
    codes[mask] = CODE_FOR_COLOR[color] + CODE_SHAPE_OFFSET[shape]
    return codes.reshape(-1).tolist()


def image_gen_rows(rng, split, n):
    """uniq-id, image-code (1024 space-separated ints), lowercased caption."""
    rows = []
    for i in range(n):
        color, shape, slot = pick(rng, COLORS), pick(rng, SHAPES), pick(rng, SLOTS)
        caption = f"a {color} {shape} {where(slot)}"
        codes = " ".join(str(c) for c in caption_to_codes(color, shape, slot))
        rows.append([str(ID_BASE[split] + i + 1), codes, caption])
    return rows


# ---------------------------------------------------------------- OFA-CN (Chinese text) and OFA-OCR

COLORS_CN = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色"}
SHAPES_CN = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "diamond": "菱形"}
SLOTS_CN = {"left": "左边", "center": "中间", "right": "右边"}


def canonical_caption_cn(obj: DrawnShape) -> str:
    """The Chinese training caption of a single-shape image, e.g. 左边有一个红色的圆形。"""
    return f"{SLOTS_CN[obj.slot]}有一个{COLORS_CN[obj.color]}的{SHAPES_CN[obj.shape]}。"


def reference_captions_cn(obj: DrawnShape) -> list[str]:
    """Chinese evaluation references, the canonical caption first."""
    color, shape, slot = COLORS_CN[obj.color], SHAPES_CN[obj.shape], SLOTS_CN[obj.slot]
    return [canonical_caption_cn(obj), f"一个{color}的{shape}", f"{color}的{shape}在{slot}"]


def referring_expression_cn(rng, obj: DrawnShape) -> str:
    """A Chinese phrase that singles out `obj`."""
    color, shape, slot = COLORS_CN[obj.color], SHAPES_CN[obj.shape], SLOTS_CN[obj.slot]
    return pick(rng, (f"{color}的{shape}", f"{slot}的{shape}", f"{slot}的{color}{shape}", f"{color}的那个"))


# Latin capitals and digits: Pillow's bundled default font draws them on any machine (no CJK font needed)
OCR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
OCR_LENGTHS = (3, 6)
OCR_FULL_WIDTH_EVERY = 4  # every 4th label is stored full-width (ＡＢ１２): the ocr task folds it with NFKC


def to_full_width(text: str) -> str:
    """ASCII letters and digits as their full-width forms (U+FF01.. = ASCII + 0xFEE0)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def ocr_rows(rng, split, n, image_size):
    """uniq-id, image (a text line, 2*size x size/3), label: the text drawn with Pillow's default font."""
    width, height = 2 * image_size, image_size // 3
    font = ImageFont.load_default(size=round(height * 0.7))
    rows = []
    for i in range(n):
        text = "".join(pick(rng, OCR_ALPHABET) for _ in range(int(rng.integers(OCR_LENGTHS[0], OCR_LENGTHS[1] + 1))))
        background = tuple(int(v) for v in rng.integers(200, 256, size=3))
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        left = int(rng.integers(2, max(3, width - (x1 - x0) - 2)))
        draw.text((left - x0, (height - (y1 - y0)) // 2 - y0), text, fill=(20, 20, 20), font=font)
        label = to_full_width(text) if i % OCR_FULL_WIDTH_EVERY == OCR_FULL_WIDTH_EVERY - 1 else text
        assert unicodedata.normalize("NFKC", label) == text
        rows.append([str(ID_BASE[split] + i + 1), image_to_base64(image, "PNG"), label])
    return rows


# ---------------------------------------------------------------- writing

def shuffled(rng, rows: list) -> list:
    """Rows in a random order: the original reads TSVs sequentially, so files are pre-shuffled."""
    return [rows[i] for i in rng.permutation(len(rows)).tolist()]


def split_rng(seed: int, task: str, split: str) -> np.random.Generator:
    """Independent stream per (seed, task, split), so generating a subset of tasks gives the same files."""
    return np.random.default_rng([seed, zlib.crc32(task.encode()), SPLITS.index(split)])


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    """Write tab-separated rows with '\\n' line ends; fields must not contain tabs or newlines."""
    lines = []
    for row_number, row in enumerate(rows):
        for field in row:
            if "\t" in field or "\n" in field:
                raise ValueError(f"{path}: row {row_number} has a tab or newline in field {field[:40]!r}")
        lines.append("\t".join(row) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(lines).encode("utf-8"))
    return path


def write_pickle(path: Path, obj) -> Path:
    """Pickle with a fixed protocol so the bytes do not depend on the Python version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def coco_caption_json(path: Path, rows: list[list[str]]) -> Path:
    """COCO-format references for the original's coco_eval.py (ids are the image-id column, as strings)."""
    images, annotations = [], []
    for row in rows:
        image_id = row[1]
        images.append({"id": image_id})
        for caption in row[2].split("&&"):
            annotations.append({"image_id": image_id, "id": len(annotations) + 1, "caption": caption})
    data = {"info": {"description": "OFA tiny synthetic captions"}, "licenses": [], "type": "captions",
            "images": images, "annotations": annotations}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def cider_document_frequency(references_per_image: list[list[str]]) -> dict:
    """CIDEr-D cached tokens like the original's coco-*-words.p: n-gram (n<=4) document frequencies over images."""
    frequency = defaultdict(float)
    for references in references_per_image:
        ngrams = set()
        for reference in references:
            words = reference.split() + ["<eos>"]
            for n in range(1, 5):
                ngrams.update(tuple(words[k:k + n]) for k in range(len(words) - n + 1))
        for ngram in sorted(ngrams):
            frequency[ngram] += 1.0
    return {"document_frequency": frequency, "ref_len": len(references_per_image)}


ROW_MAKERS: dict[str, Callable] = {
    "caption": caption_rows,
    "vqa": vqa_rows,
    "refcoco": refcoco_rows,
    "snli_ve": snli_ve_rows,
    "image_classify": image_classify_rows,
    "gigaword": gigaword_rows,
    "image_gen": image_gen_rows,
    **{name: glue_rows(name) for name in GLUE_TASKS},
    "caption_cn": functools.partial(caption_rows, canonical=canonical_caption_cn, references=reference_captions_cn),
    "refcoco_cn": functools.partial(refcoco_rows, expression=referring_expression_cn),
    "ocr": ocr_rows,
}


def task_dir(out_dir: Path, task: str) -> Path:
    """Folder of a task: GLUE tasks live under glue/<name>."""
    return out_dir / "glue" / task if task in GLUE_TASKS else out_dir / task


def parse_tasks(tasks: Sequence[str] | None) -> list[str]:
    """Expand 'glue' to its seven tasks and check names; None means every task."""
    if tasks is None:
        return list(ALL_TASKS)
    names = []
    for task in tasks:
        expanded = GLUE_TASKS if task == "glue" else (task,)
        for name in expanded:
            if name not in ALL_TASKS:
                raise ValueError(f"unknown task {name!r}; choose from {', '.join(ALL_TASKS)} or 'glue'")
            if name not in names:
                names.append(name)
    return names


def write_extras(task: str, folder: Path, rows_by_split: dict[str, list[list[str]]]) -> dict[str, Path]:
    """Side files the original's options read: answer/class pickles, COCO references, CIDEr-D frequencies."""
    if task == "caption":
        train_refs = [[row[2]] for row in rows_by_split["train"]]
        valid_refs = [row[2].split("&&") for row in rows_by_split["valid"]]
        words = folder / "cider_cached_tokens"
        return {
            "valid_coco": coco_caption_json(folder / "valid_caption_coco_format.json", rows_by_split["valid"]),
            "test_coco": coco_caption_json(folder / "test_caption_coco_format.json", rows_by_split["test"]),
            "train_words": write_pickle(words / "tiny-train-words.p", cider_document_frequency(train_refs)),
            "valid_words": write_pickle(words / "tiny-valid-words.p", cider_document_frequency(valid_refs)),
        }
    if task == "vqa":
        answers = {answer: i for i, answer in enumerate(vqa_candidate_answers())}
        return {"ans2label": write_pickle(folder / "trainval_ans2label.pkl", answers)}
    if task == "image_classify":
        classes = {name: i for i, name in enumerate(class_names())}
        return {"ans2label": write_pickle(folder / "class2label_new.pkl", classes)}
    return {}


def make_tiny_dataset(
    out_dir, seed: int = 0, tasks: Sequence[str] | None = None, image_size: int = 96
) -> dict[str, dict[str, Path]]:
    """Write the benchmark under `out_dir`; returns {task: {split or extra file name: path}}."""
    if not 48 <= image_size <= 1024:
        raise ValueError(f"image_size must be in [48, 1024], got {image_size}")
    out_dir = Path(out_dir)
    written: dict[str, dict[str, Path]] = {}
    for task in parse_tasks(tasks):
        folder = task_dir(out_dir, task)
        files: dict[str, Path] = {}
        rows_by_split = {}
        for split in SPLITS:
            rng = split_rng(seed, task, split)
            n = SPLIT_SIZES[task][split]
            if task in IMAGE_TASKS:
                rows = ROW_MAKERS[task](rng, split, n, image_size)
            else:
                rows = ROW_MAKERS[task](rng, split, n)
            rows_by_split[split] = rows
            files[split] = write_tsv(folder / f"{split}.tsv", rows)
        files.update(write_extras(task, folder, rows_by_split))
        written[task] = files
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "tiny"),
                        help="output folder (default: dataset/tiny next to this script)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical files")
    parser.add_argument("--tasks", default=None,
                        help=f"comma-separated subset of {','.join(ALL_TASKS)} ('glue' = all seven GLUE tasks)")
    parser.add_argument("--image-size", type=int, default=96,
                        help="image height in pixels (refcoco images are 4/3 as wide)")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    written = make_tiny_dataset(args.out, seed=args.seed, tasks=tasks, image_size=args.image_size)
    for task, files in written.items():
        for name, path in files.items():
            rows = sum(1 for _ in path.open("rb")) if path.suffix == ".tsv" else None
            detail = f"{rows} rows, " if rows is not None else ""
            print(f"{task:15s} {name:12s} {path} ({detail}{path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
