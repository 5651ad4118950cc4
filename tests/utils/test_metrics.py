"""Task metrics on hand-computed cases."""
import json
import math

import pytest
import torch

from utils import metrics

needs_java = pytest.mark.skipif(not metrics.java_available(), reason="pycocoevalcap's PTB tokenizer and METEOR need java")


@needs_java
def test_ptb_tokenize_lowercases_and_drops_punctuation():
    tokenized = metrics.ptb_tokenize({"a": ["A Man, riding a horse.", "Dogs' toys!"]})
    assert tokenized == {"a": ["a man riding a horse", "dogs toys"]}


@pytest.mark.slow
@needs_java
def test_coco_caption_scores_hand_computed(tmp_path):
    references = {"1": ["a man riding a horse"], "2": ["two dogs play with toys"]}
    # the first case goes through the files: evaluate.py's predictions and COCO-format annotations (int ids)
    result_file, annotation_file = tmp_path / "test_predict.json", tmp_path / "captions.json"
    result_file.write_text(json.dumps([{"image_id": "1", "caption": "A man riding a horse."},
                                       {"image_id": "2", "caption": "two dogs play with toys"}]))
    annotation_file.write_text(json.dumps({"annotations": [
        {"image_id": int(key), "id": i, "caption": caption}
        for i, (key, captions) in enumerate(references.items()) for caption in captions
    ] + [{"image_id": 3, "id": 9, "caption": "an image without prediction is not scored"}]}))
    perfect = metrics.coco_caption_file_scores(str(result_file), str(annotation_file))
    # identical captions: every n-gram precision is 1, no brevity penalty, cosine 1 for every n (CIDEr x10)
    assert perfect["Bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["ROUGE_L"] == pytest.approx(1.0)
    assert perfect["CIDEr"] == pytest.approx(10.0)
    assert perfect["METEOR"] == pytest.approx(1.0)

    references["3"] = ["cat dog horse fish"]
    partial = metrics.coco_caption_scores({"1": "a man riding a horse", "2": "", "3": "cat dog bird fish"}, references)
    # corpus BLEU: 9 hypothesis words against 14 reference words (brevity penalty exp(1 - 14/9));
    # matched n-grams: 1-grams 5+3 of 9, 2-grams 4+1 of 7, 3-grams 3+0 of 5, 4-grams 2+0 of 3
    bleu_4 = math.exp(1 - 14 / 9) * (8 / 9 * 5 / 7 * 3 / 5 * 2 / 3) ** 0.25
    assert partial["Bleu_4"] == pytest.approx(bleu_4, abs=1e-6)
    # per-image ROUGE-L averaged: 1, 0, and LCS "cat dog fish" = 3 of 4 words (P = R = F = 0.75)
    assert partial["ROUGE_L"] == pytest.approx((1 + 0 + 0.75) / 3)
    assert 0 < partial["METEOR"] < 1 and 0 < partial["CIDEr"] < 10
    assert set(partial) == set(metrics.CAPTION_METRICS)


def test_coco_caption_scores_needs_references():
    with pytest.raises(ValueError, match="no reference captions"):
        metrics.coco_caption_scores({"1": "a cat"}, {"1": []})


def test_write_coco_caption_results(tmp_path):
    path = tmp_path / "out" / "captions.json"
    metrics.write_coco_caption_results({"7": "a cat", "8": "a dog"}, str(path))
    assert json.loads(path.read_text()) == [{"image_id": "7", "caption": "a cat"}, {"image_id": "8", "caption": "a dog"}]
    assert [p.name for p in path.parent.iterdir()] == ["captions.json"]  # no temporary file left


def test_vqa_soft_accuracy_is_the_answer_confidence():
    confidences = {"yes": 0.6, "no": 0.9}
    assert metrics.vqa_soft_accuracy("no", confidences) == pytest.approx(0.9)
    assert metrics.vqa_soft_accuracy("yes", confidences) == pytest.approx(0.6)
    assert metrics.vqa_soft_accuracy("maybe", confidences) == 0.0


def test_bins_to_boxes_divides_by_resize_ratios():
    # bin 999 of 1000 is the far edge of a 512-pixel canvas; the image was resized by 0.5 (w) and 2 (h)
    bins = torch.tensor([[0, 0, 999, 999], [333, 999, 666, 0]])
    boxes = metrics.bins_to_boxes(bins, 1000, 512, torch.tensor([0.5, 1.0]), torch.tensor([2.0, 1.0]))
    assert torch.allclose(boxes[0], torch.tensor([0.0, 0.0, 1024.0, 256.0]))
    assert torch.allclose(boxes[1], torch.tensor([333 / 999 * 512, 512.0, 666 / 999 * 512, 0.0]))


def test_box_iou_and_grounding_hits():
    targets = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4)
    boxes = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],  # identical: IoU 1
        [0.0, 0.0, 10.0, 5.0],  # half the target: IoU 0.5 (a hit)
        [5.0, 0.0, 15.0, 10.0],  # 50 shared of 150: IoU 1/3
        [10.0, 10.0, 20.0, 20.0],  # touches at a corner only
    ])
    iou, overlaps = metrics.box_iou(boxes, targets)
    assert iou[:3].tolist() == pytest.approx([1.0, 0.5, 1 / 3], abs=1e-6)
    assert overlaps.tolist() == [True, True, True, False]
    assert metrics.grounding_hits(boxes, targets).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_accuracy_and_mean():
    assert metrics.accuracy(["yes", "no", "maybe", "no"], ["yes", "no", "no", "no"]) == 0.75
    assert metrics.mean([1.0, 0.0, 0.5]) == 0.5
    with pytest.raises(ValueError):
        metrics.accuracy(["yes"], ["yes", "no"])
    with pytest.raises(ValueError):
        metrics.mean([])


def test_classification_scores_f1_and_mcc():
    predictions = ["yes", "yes", "no", "no", "yes", "no"]
    labels = ["yes", "no", "no", "yes", "yes", "no"]
    # TP 2, FP 1, FN 1, TN 2: F1 = 2*2 / (2*2 + 1 + 1) = 2/3; MCC = (2*2 - 1*1) / sqrt(3*3*3*3) = 1/3
    scores = metrics.classification_scores(predictions, labels, positive_label="yes", mcc=True)
    assert scores == pytest.approx({"accuracy": 4 / 6, "f1": 2 / 3, "mcc": 1 / 3})
    assert set(metrics.classification_scores(predictions, labels)) == {"accuracy"}


def test_rouge_scores_hand_computed():
    # unigrams 2/3 shared, bigrams 1/2 shared, LCS 2 of 3 words
    assert metrics.rouge_scores(["the cat sat"], ["the cat ran"]) == pytest.approx(
        {"rouge1": 2 / 3, "rouge2": 0.5, "rougeL": 2 / 3}
    )
    # Porter stemming: running -> run, cats -> cat, runs -> run; P 2/2, R 2/3 -> F 0.8; LCS 1 -> F 0.4
    assert metrics.rouge_scores(["running cats"], ["the cat runs"]) == pytest.approx(
        {"rouge1": 0.8, "rouge2": 0.0, "rougeL": 0.4}
    )
    # a corpus score is the mean of the per-pair F-measures
    assert metrics.rouge_scores(["a b", "c d"], ["a b", "x y"])["rouge1"] == pytest.approx(0.5)


@pytest.mark.parametrize("text, expected", [
    ('said " hello " ( to them )', "said `` hello '' -lrb- to them -rrb-"),
    ("it isn ' t John ' s ' own '", "it is n't John 's ` own '"),
    ("wait . . . now", "wait ... now"),
    ("$ 3 , 000 or 3 . 03", "$ 3,000 or 3.03"),
    # the original resumes after "U . N" and so keeps the acronym's last "." as a token too
    ("the U . N . said", "the U.N. . said"),
    ("well - known - - a - , b -", "well-known -- a - , b -"),
    ("[UNK] & < >", "UNK &amp; &lt; &gt;"),
])
def test_fix_tokenization_matches_gigaword_references(text, expected):
    assert metrics.fix_tokenization(text) == expected
