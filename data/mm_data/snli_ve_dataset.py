"""SNLI-VE rows: uniq-id, image, hypothesis, caption (premise), label."""
from __future__ import annotations

import torch

from data.ofa_dataset import OFADataset

SNLI_VE_ANSWERS = {"entailment": "yes", "contradiction": "no", "neutral": "maybe"}


class SnliVeDataset(OFADataset):
    """Source `` does the image describe " {hypothesis} "?`` (with ``add_caption`` the premise joins it);
    target yes / no / maybe."""

    num_selected_cols = (5,)

    def __init__(self, *args, add_caption: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_caption = add_caption

    def process_row(self, index, row):
        uniq_id, _, hypothesis, caption, label = row
        if label not in SNLI_VE_ANSWERS:
            raise row.error(4, f"unknown label {label!r} (expected one of {sorted(SNLI_VE_ANSWERS)})")
        answer = SNLI_VE_ANSWERS[label]
        hypothesis = self.pre_caption(hypothesis, self.max_src_length)
        if self.add_caption:
            caption = self.pre_caption(caption, self.max_src_length)
            src_item = self.encode_text(' can image and text1 " {} " imply text2 " {} "?'.format(caption, hypothesis))
        else:
            src_item = self.encode_text(' does the image describe " {} "?'.format(hypothesis))
        src_item = torch.cat([self.bos_item, src_item, self.eos_item])
        return {
            "id": uniq_id,
            "source": src_item,
            **self.patch_image(row, 1),
            **self.decoder_items(src_item, self.encode_text(" {}".format(answer))),
            "ref_dict": {answer: 1.0},
        }
