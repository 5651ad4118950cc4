"""The tiny pretraining files: deterministic, in the original's four formats, labels that match the drawings."""
import base64
import json
from io import BytesIO

import numpy as np
from PIL import Image

from dataset.make_tiny_dataset import CODE_BACKGROUND, CODE_FOR_COLOR, PALETTE
from dataset.make_tiny_pretrain_data import make_tiny_pretrain_data

BACKGROUND = np.array([240, 240, 240])


def rows(path):
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def image(field):
    return np.asarray(Image.open(BytesIO(base64.b64decode(field))).convert("RGB"), dtype=np.int64)


def test_same_seed_same_bytes_and_formats(tmp_path):
    first = make_tiny_pretrain_data(tmp_path / "a", seed=0, image_size=48, code_image_size=32)
    second = make_tiny_pretrain_data(tmp_path / "b", seed=0, image_size=48, code_image_size=32)
    other = make_tiny_pretrain_data(tmp_path / "c", seed=1, image_size=48, code_image_size=32)
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name
    assert first["vision_language"].read_bytes() != other["vision_language"].read_bytes()
    assert [first[n].name for n in ("vision_language", "text", "image", "detection")] == [
        "vision_language_examples.tsv", "text_examples.tsv", "image_examples.tsv", "detection_examples.tsv"]
    for name, columns in (("vision_language", 8), ("text", 2), ("image", 3), ("detection", 3)):
        assert {len(r) for r in rows(first[name])} == {columns}, name

    vl = rows(first["vision_language"])
    assert {r[7] for r in vl} == {"caption", "qa", "visual_grounding"}
    assert {r[6] for r in vl if r[7] == "caption"} == {"coco", "cc12m"}
    for uniq_id, field, caption, question, answer, gt_objects, _, pair_type in vl:
        pixels = image(field)
        assert pixels.shape[:2] == (48, 64)
        if pair_type == "qa":
            assert question.endswith("?") and all("|!+" in a for a in answer.split("&&"))
        elif pair_type == "visual_grounding":
            x0, y0, x1, y1 = map(int, answer.split(","))
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48
            centre = pixels[(y0 + y1) // 2, (x0 + x1) // 2]
            assert np.abs(centre - BACKGROUND).sum() > 60  # the referred shape is drawn there
        else:
            assert caption.startswith("a ") and all(o in caption for o in gt_objects.split("&&"))

    for _, field, boxes in rows(first["detection"]):
        pixels = image(field)
        for box in boxes.split("&&"):
            x0, y0, x1, y1, object_id, name = box.split(",", 5)
            x0, y0, x1, y1 = map(int, (x0, y0, x1, y1))
            assert int(object_id) >= 1 and name in ("circle", "square", "triangle", "diamond")
            assert np.abs(pixels[(y0 + y1) // 2, (x0 + x1) // 2] - BACKGROUND).sum() > 60

    for _, field, codes in rows(first["image"]):
        pixels = image(field)
        assert pixels.shape[:2] == (64, 64)  # 2 * code_image_size
        codes = np.array([int(c) for c in codes.split()]).reshape(4, 4)  # (32 / 8)^2 codes of the centre
        assert ((0 <= codes) & (codes < 8192)).all()
        # one code per 8x8 cell: the colour's code (+ shape offset) where the cell is near a drawn colour
        cells = pixels[16:48, 16:48].reshape(4, 8, 4, 8, 3).mean(axis=(1, 3))
        distance = {c: np.sqrt(((cells - np.array(PALETTE[c])) ** 2).sum(-1)) for c in PALETTE}
        nearest = np.array([[min(PALETTE, key=lambda c: distance[c][i, j]) for j in range(4)] for i in range(4)])
        drawn = np.array([[distance[nearest[i, j]][i, j] < 60 for j in range(4)] for i in range(4)])
        assert drawn.any() and (codes[~drawn] == CODE_BACKGROUND).all()
        for i, j in zip(*np.nonzero(drawn)):
            assert 0 <= codes[i, j] - CODE_FOR_COLOR[nearest[i, j]] < 4

    assert all(len(r[1].split()) >= 5 for r in rows(first["text"]))
    type2ans = json.loads(first["type2ans"].read_text())
    assert "other" in type2ans and all(len(v) >= 2 for v in type2ans.values())
    assert len(first["object"].read_text().split("\n")) > 2 and first["all_captions"].read_text().count("\n") > 2
