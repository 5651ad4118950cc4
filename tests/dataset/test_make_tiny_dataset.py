"""The tiny synthetic benchmark: deterministic, in the original OFA TSV formats, and learnable."""
import base64
import binascii
import json
import pickle
from collections import defaultdict
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset.make_tiny_dataset import (
    ALL_TASKS, BACKGROUND, CODE_GRID, COLORS, GLUE_TASKS, PALETTE, SHAPES, SLOTS, SPLIT_SIZES, SPLITS,
    main, make_tiny_dataset,
)

IMAGE_SIZE = 64  # smaller than the default to keep the suite fast


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return out, make_tiny_dataset(out, seed=0, image_size=IMAGE_SIZE)


def read_tsv(path: Path, columns: int):
    """Rows split exactly like the original FileDataset (rstrip('\\n'), split on tabs), with a column check."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f):
            fields = line.rstrip("\n").split("\t")
            assert len(fields) == columns, f"{path} row {number}: {len(fields)} columns, expected {columns}"
            rows.append(fields)
    return rows


def decode_image(b64: str, fmt: str, size) -> np.ndarray:
    """Standard-alphabet base64 (also what the original's urlsafe_b64decode accepts) -> RGB array of `size`."""
    try:
        data = base64.b64decode(b64, validate=True)
    except binascii.Error as error:
        pytest.fail(f"not standard base64: {error}")
    assert base64.urlsafe_b64decode(b64) == data
    image = Image.open(BytesIO(data))
    assert image.format == fmt and image.size == size
    return np.asarray(image.convert("RGB")).astype(np.int16)


def foreground(pixels: np.ndarray) -> np.ndarray:
    """Pixels clearly different from the plain background (robust to JPEG ringing)."""
    return np.abs(pixels - np.array(BACKGROUND)).max(-1) > 60


def colour_word(pixels: np.ndarray, mask: np.ndarray) -> str:
    """The trivial pixel rule: palette colour nearest to the median foreground pixel."""
    median = np.median(pixels[mask], axis=0)
    return min(PALETTE, key=lambda c: np.abs(median - np.array(PALETTE[c])).sum())


def slot_word(mask: np.ndarray) -> str:
    """Which horizontal third holds the centroid of `mask`."""
    return SLOTS[int(np.nonzero(mask)[1].mean() * 3 // mask.shape[1])]


def shape_word(mask: np.ndarray) -> str:
    """A trivial rule for the shape of a single foreground object: fill ratio of its box and widest row."""
    ys, xs = np.nonzero(mask)
    box = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    fill = box.mean()  # square 1, circle pi/4, triangle and diamond 1/2
    if fill > 0.9:
        return "square"
    if np.argmax(box.sum(1)) > 0.7 * box.shape[0]:  # a triangle is widest at its base
        return "triangle"
    return "circle" if fill > 0.625 else "diamond"


def horizontal_runs(mask: np.ndarray) -> int:
    """Number of separate groups of foreground columns (= shapes, which never share a column)."""
    columns = mask.any(0).astype(np.int8)
    return int((np.diff(np.concatenate([[0], columns])) == 1).sum())


def parse_vqa_answers(column: str) -> dict:
    """The original VqaGenDataset's parse: `conf|!+answer` items joined by `&&`."""
    return {item.split("|!+")[1]: float(item.split("|!+")[0]) for item in column.split("&&")}


def test_every_task_and_split_is_written(tiny):
    out, written = tiny
    assert set(written) == set(ALL_TASKS)
    for task, files in written.items():
        for split in SPLITS:
            assert files[split].is_file()
            assert sum(1 for _ in files[split].open("rb")) == SPLIT_SIZES[task][split]
    assert written["cola"]["train"] == out / "glue" / "cola" / "train.tsv"
    assert written["caption"]["train"] == out / "caption" / "train.tsv"


def test_same_seed_gives_byte_identical_files(tiny, tmp_path):
    out, written = tiny
    again = make_tiny_dataset(tmp_path / "again", seed=0, image_size=IMAGE_SIZE)
    for task, files in written.items():
        for name, path in files.items():
            assert path.read_bytes() == again[task][name].read_bytes(), f"{task}/{name} differs between runs"
    # a subset of tasks writes the same bytes as the full run; another seed writes other data
    subset = make_tiny_dataset(tmp_path / "subset", seed=0, tasks=["vqa", "glue"], image_size=IMAGE_SIZE)
    assert set(subset) == {"vqa", *GLUE_TASKS}
    assert subset["vqa"]["train"].read_bytes() == written["vqa"]["train"].read_bytes()
    other = make_tiny_dataset(tmp_path / "other", seed=1, tasks=["caption"], image_size=IMAGE_SIZE)
    assert other["caption"]["train"].read_bytes() != written["caption"]["train"].read_bytes()


def test_caption_format_and_references(tiny):
    _, written = tiny
    train = read_tsv(written["caption"]["train"], 5)
    for uniq_id, image_id, caption, labels, image in train:
        assert uniq_id.isdigit() and image_id.isdigit() and "&&" not in caption
        assert labels in SHAPES and labels in caption
        decode_image(image, "JPEG", (IMAGE_SIZE, IMAGE_SIZE))
    for split in ("valid", "test"):
        rows = read_tsv(written["caption"][split], 5)
        assert all(len(row[2].split("&&")) >= 2 for row in rows)
        # COCO-format references for coco_eval.py, keyed by the image-id column (evaluate's selected_cols 1,4,2)
        coco = json.loads(written["caption"][f"{split}_coco"].read_text())
        refs = defaultdict(list)
        for annotation in coco["annotations"]:
            refs[annotation["image_id"]].append(annotation["caption"])
        assert [image["id"] for image in coco["images"]] == [row[1] for row in rows]
        assert all(refs[row[1]] == row[2].split("&&") for row in rows)
    ids = [row[0] for split in SPLITS for row in read_tsv(written["caption"][split], 5)]
    assert len(ids) == len(set(ids))


def test_caption_cider_document_frequencies(tiny):
    _, written = tiny
    cached = pickle.loads(written["caption"]["train_words"].read_bytes())
    train = read_tsv(written["caption"]["train"], 5)
    assert set(cached) == {"document_frequency", "ref_len"}
    assert isinstance(cached["document_frequency"], defaultdict) and cached["ref_len"] == len(train)
    frequency = cached["document_frequency"]
    assert frequency[("a",)] == len(train)  # every caption starts with "a"
    assert all(1 <= len(ngram) <= 4 for ngram in frequency)
    assert any(ngram[-1] == "<eos>" for ngram in frequency)
    valid = pickle.loads(written["caption"]["valid_words"].read_bytes())
    assert valid["ref_len"] == SPLIT_SIZES["caption"]["valid"]


def test_vqa_format_and_candidate_answers(tiny):
    _, written = tiny
    ans2label = pickle.loads(written["vqa"]["ans2label"].read_bytes())
    assert sorted(ans2label.values()) == list(range(len(ans2label)))
    for split in SPLITS:
        for question_id, image_id, question, answers, labels, image in read_tsv(written["vqa"][split], 6):
            int(question_id), int(image_id)  # the original's evaluate writes int(question_id)
            assert question.endswith("?")
            ref_dict = parse_vqa_answers(answers)
            assert max(ref_dict.values()) == 1.0 and all(0 < c <= 1 for c in ref_dict.values())
            assert set(ref_dict) <= set(ans2label), f"answer outside trainval_ans2label: {ref_dict}"
            assert all(label in SHAPES for label in labels.split("&&"))
            decode_image(image, "JPEG", (IMAGE_SIZE, IMAGE_SIZE))


def test_refcoco_boxes_match_the_drawn_shape(tiny):
    _, written = tiny
    size = (IMAGE_SIZE * 4 // 3, IMAGE_SIZE)
    for split in SPLITS:
        rows = read_tsv(written["refcoco"][split], 5)
        images = {}
        for uniq_id, image_id, text, region, image in rows:
            assert uniq_id.startswith(image_id + "_")
            assert images.setdefault(image_id, image) == image  # texts of one image share it
            pixels = decode_image(image, "PNG", size)
            x0, y0, x1, y1 = (float(v) for v in region.split(","))
            assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
            x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
            mask = foreground(pixels)
            inside = np.zeros_like(mask)
            inside[y0:y1, x0:x1] = True
            ys, xs = np.nonzero(mask & inside)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1), "box is not tight"
            ring = np.zeros_like(mask)
            ring[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
            assert not (mask & ring & ~inside).any(), "box cuts through a shape"
            colour = colour_word(pixels, mask & inside)
            named_colours = [c for c in COLORS if c in text.split()]
            assert named_colours in ([], [colour])
            named_slots = [s for s in SLOTS if s in text.split()]
            assert named_slots in ([], [slot_word(mask & inside)])


def test_snli_ve_format(tiny):
    _, written = tiny
    labels = []
    for split in SPLITS:
        for uniq_id, image_id, image, hypothesis, premise, label in read_tsv(written["snli_ve"][split], 6):
            assert uniq_id.startswith(f"{image_id}.jpg#")
            assert label in ("entailment", "neutral", "contradiction")
            assert hypothesis and premise
            decode_image(image, "JPEG", (IMAGE_SIZE, IMAGE_SIZE))
            labels.append(label)
    counts = {label: labels.count(label) for label in set(labels)}
    assert len(counts) == 3 and min(counts.values()) == max(counts.values())


def test_image_classify_labels_and_class_file(tiny):
    _, written = tiny
    class2label = pickle.loads(written["image_classify"]["ans2label"].read_bytes())
    names = sorted(class2label, key=class2label.get)
    assert len(names) == len(COLORS) * len(SHAPES)
    seen = set()
    for split in SPLITS:
        for image, label, name in read_tsv(written["image_classify"][split], 3):
            assert 1 <= int(label) <= len(names) and names[int(label) - 1] == name
            pixels = decode_image(image, "JPEG", (IMAGE_SIZE, IMAGE_SIZE))
            mask = foreground(pixels)
            assert f"{colour_word(pixels, mask)} {shape_word(mask)}" == name
            seen.add(name)
    assert seen == set(names)


def test_gigaword_headlines_copy_from_the_source(tiny):
    _, written = tiny
    for split in SPLITS:
        for source, target in read_tsv(written["gigaword"][split], 2):
            assert len(target.split()) < len(source.split())
            assert set(target.split()) <= set(source.split())


# columns of each GLUE file and the original run_scripts/glue selected_cols; the last selected column is the label
GLUE_LAYOUT = {
    "cola": (3, (1, 2), {"0", "1"}),
    "mnli": (3, (0, 1, 2), {"0", "1", "2"}),
    "mrpc": (3, (0, 1, 2), {"0", "1"}),
    "qnli": (4, (1, 2, 3), {"entailment", "not_entailment"}),
    "qqp": (6, (3, 4, 5), {"0", "1"}),
    "rte": (4, (1, 2, 3), {"entailment", "not_entailment"}),
    "sst2": (2, (0, 1), {"0", "1"}),
}


@pytest.mark.parametrize("name", GLUE_TASKS)
def test_glue_layout_and_labels(tiny, name):
    _, written = tiny
    columns, selected, label_set = GLUE_LAYOUT[name]
    label_of_text = {}
    for split in SPLITS:
        rows = read_tsv(written[name][split], columns)
        labels = [row[selected[-1]] for row in rows]
        assert set(labels) == label_set
        if split == "train":  # balanced enough that the majority class is far from perfect
            assert max(labels.count(label) for label in label_set) <= 0.7 * len(labels)
        for row in rows:
            text = tuple(row[i] for i in selected[:-1])
            assert all(t.strip() for t in text)
            assert label_of_text.setdefault(text, row[selected[-1]]) == row[selected[-1]], f"{text} has two labels"


def test_image_gen_codes_are_a_function_of_the_caption(tiny):
    _, written = tiny
    codes_of_caption = {}
    for split in SPLITS:
        for uniq_id, codes, caption in read_tsv(written["image_gen"][split], 3):
            values = [int(v) for v in codes.split(" ")]
            assert len(values) == CODE_GRID * CODE_GRID and all(0 <= v < 8192 for v in values)
            assert caption == caption.lower()
            assert codes_of_caption.setdefault(caption, codes) == codes
    assert len(set(codes_of_caption.values())) == len(codes_of_caption)


def test_pixel_rules_recover_caption_and_vqa_answers(tiny):
    _, written = tiny
    for split in SPLITS:
        for row in read_tsv(written["caption"][split], 5):
            pixels = decode_image(row[4], "JPEG", (IMAGE_SIZE, IMAGE_SIZE))
            mask = foreground(pixels)
            caption = row[2].split("&&")[0].split()
            assert colour_word(pixels, mask) == caption[1] and slot_word(mask) == caption[-1], row[2]
            assert shape_word(mask) == caption[2], row[2]
        for row in read_tsv(written["vqa"][split], 6):
            answer = max(parse_vqa_answers(row[3]).items(), key=lambda item: item[1])[0]
            pixels = decode_image(row[5], "JPEG", (IMAGE_SIZE, IMAGE_SIZE))
            mask = foreground(pixels)
            assert horizontal_runs(mask) == len(row[4].split("&&"))
            if row[2] == "how many shapes are there?":
                assert answer == str(horizontal_runs(mask))


def test_cli_writes_requested_tasks(tmp_path, capsys):
    main(["--out", str(tmp_path), "--tasks", "sst2,caption", "--image-size", "48", "--seed", "3"])
    printed = capsys.readouterr().out
    assert "caption" in printed and "sst2" in printed and "vqa" not in printed
    rows = read_tsv(tmp_path / "caption" / "test.tsv", 5)
    decode_image(rows[0][4], "JPEG", (48, 48))
    assert (tmp_path / "glue" / "sst2" / "valid.tsv").is_file() and not (tmp_path / "vqa").exists()


def test_bad_arguments_are_reported(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'captions'"):
        make_tiny_dataset(tmp_path, tasks=["captions"])
    with pytest.raises(ValueError, match="image_size"):
        make_tiny_dataset(tmp_path, image_size=8)
