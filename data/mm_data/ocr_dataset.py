"""OFA-OCR rows (scene text / document recognition): uniq-id, image, text label."""
from __future__ import annotations

import random
import unicodedata
import zlib

import numpy as np
import torch

from data.ofa_dataset import OFADataset
from data.transforms import ToNormalizedTensor, normalization
from data.transforms import ocr_resize

PROMPT = " what are the texts on the image?"
PROMPT_CN = "图片上的文字是什么?"


def normalize_ocr_text(text: str) -> str:
    """Traditional Chinese to simplified (zhconv ``zh-hans``), then NFKC (full-width to ASCII, ``①`` to 1)."""
    from zhconv import convert

    return unicodedata.normalize("NFKC", convert(text, "zh-hans"))


class OcrDataset(OFADataset):
    """Source ``图片上的文字是什么?`` (GPT-2 BPE: `` what are the texts on the image?``); target the normalised,
    lower-cased label: its first ``max_tgt_length`` characters (GPT-2 BPE: words).

    Images keep their aspect ratio and are edge-padded to a square at a random offset (see
    :func:`data.transforms.ocr_resize`); the offset comes from a generator seeded by (epoch, row), so a row gives
    the same image in every split, worker and rerun.
    """

    num_selected_cols = (3,)

    def __init__(self, *args, is_document: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_document = is_document
        self.to_normalized_tensor = ToNormalizedTensor(*normalization(self.imagenet_default_mean_and_std))
        self.epoch = 1

    def set_epoch(self, epoch, **unused):
        self.epoch = epoch

    def sample_random(self, index: int) -> random.Random:
        # the row's place in its file; prediction (no file) numbers its samples as a one-process evaluation does
        row = index + (self.dataset.start_pos if self.dataset is not None else 0)
        seed = zlib.crc32(np.array([self.epoch, row], dtype=np.int64).tobytes())
        return random.Random(seed)

    def ocr_image(self, image, rng: random.Random) -> torch.Tensor:
        """The normalised (3, S, S) patch image of a PIL image, padding offset drawn from ``rng``."""
        return self.to_normalized_tensor(ocr_resize(image, self.patch_image_size, self.is_document, rng))

    def target_text(self, label: str) -> str:
        label = normalize_ocr_text(label)
        if self.chinese:
            return label[: self.max_tgt_length].lower()
        return " ".join(label.lower().strip().split()[: self.max_tgt_length])

    def process_row(self, index, row):
        uniq_id, _, label = row
        src_item = self.encode_text(PROMPT_CN if self.chinese else PROMPT, append_bos=True, append_eos=True)
        tgt_item = self.encode_text(" {}".format(self.target_text(label)))
        return {
            "id": uniq_id,
            "source": src_item,
            "patch_image": self.ocr_image(self.read_image(row, 1), self.sample_random(index)),
            "patch_mask": torch.tensor([True]),
            **self.seq2seq_items(tgt_item),
        }
