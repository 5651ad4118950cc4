"""VQA rows: question-id, image, question, answers with confidence (``1.0|!+answer&&0.6|!+other``), objects."""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import torch

from data.file_dataset import clean_text
from data.ofa_dataset import OFADataset, finite_float


def parse_answers(text: str) -> dict[str, float]:
    """``"1.0|!+green&&0.3|!+orange"`` -> ``{"green": 1.0, "orange": 0.3}``."""
    answers = {}
    for item in text.split("&&"):
        confidence, sep, answer = item.partition("|!+")
        if not sep:
            raise ValueError(f"answer {item!r} is not 'confidence|!+answer'")
        answers[answer] = finite_float(confidence)
    return answers


_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(answer: str) -> str:
    """VQA answer normalisation (after the official evaluation): lower case, no trailing period, number
    words as digits, no articles."""
    text = clean_text(answer).lower().rstrip(".")
    text = re.sub(r"(?<=\D)[,;!?](?=\s|$)", "", text)
    words = [_NUMBER_WORDS.get(word, word) for word in text.split() if word not in _ARTICLES]
    return " ".join(words)


def answer_scores(answers: Sequence[str]) -> dict[str, float]:
    """Soft scores of the annotators' answers: min(1, 0.3 * agreeing annotators), as VQA preprocessing does."""
    return {answer: round(min(1.0, 0.3 * count), 1) for answer, count in Counter(answers).most_common()}



class VqaGenDataset(OFADataset):
    """Source: the question (plus `` object: ...`` with ``add_object``); target: the most confident answer."""

    num_selected_cols = (5, 6)
    collate_prefix_tokens = True

    def __init__(self, *args, max_object_length: int = 30, add_object: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_object_length = max_object_length
        self.add_object = add_object

    def process_row(self, index, row):
        uniq_id, _, question, ref, predict_objects = row[:5]
        question = self.pre_question(question, self.max_src_length)
        question = question if question.endswith("?") else question + "?"
        src_item = self.encode_text(" {}".format(question))
        try:
            ref_dict = parse_answers(ref)
        except ValueError as e:
            raise row.error(3, str(e)) from None
        answer = max(ref_dict, key=ref_dict.get)
        tgt_item = self.encode_text(" {}".format(answer))
        if self.add_object and predict_objects is not None:
            objects = " ".join(predict_objects.strip().split("&&")[: self.max_object_length])
            src_item = torch.cat([src_item, self.encode_text(" object: {}".format(objects))])
        src_item = torch.cat([self.bos_item, src_item, self.eos_item])
        return {
            "id": uniq_id,
            "source": src_item,
            **self.patch_image(row, 1),
            **self.decoder_items(src_item, tgt_item),
            "ref_dict": ref_dict,
            "conf": torch.tensor([ref_dict[answer]]),
        }
