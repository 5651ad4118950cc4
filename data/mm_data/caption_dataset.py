"""Image captioning rows: uniq-id, image, caption (references joined with ``&&`` in valid/test files)."""
from __future__ import annotations

import logging

from data.ofa_dataset import OFADataset, strip_punctuation

logger = logging.getLogger(__name__)


PROMPT = " what does the image describe?"
PROMPT_CN = "图片描述了什么内容?"


class CaptionDataset(OFADataset):
    """Prompt `` what does the image describe?`` (OFA-CN: ``图片描述了什么内容?``); target the caption (all
    references at valid time)."""

    num_selected_cols = (3,)

    def __init__(self, *args, scst: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.scst = scst
        self.empty_caption_rows: set[int] = set()  # rows of this process whose caption has no word

    def _note_empty_caption(self, row) -> None:
        """Warn at the first empty training caption (it trains on a target without a word), then only
        when the count reaches 10, 100, 1000, ... so large files do not flood the log."""
        if row.row in self.empty_caption_rows:
            return
        self.empty_caption_rows.add(row.row)
        count = len(self.empty_caption_rows)
        if count == 1:
            logger.warning("%s: row %d has an empty caption; it trains on a target without a word (warned "
                           "once; the count is logged at 10, 100, ... such rows)", row.path, row.row)
        elif str(count).rstrip("0") == "1":
            logger.warning("%s: %d rows with an empty caption so far in this process", row.path, count)

    def process_row(self, index, row):
        uniq_id, _, caption = row
        if self.split == "train" and not self.scst:
            words = strip_punctuation(caption).split()
            tgt_caption = " ".join(words[: self.max_tgt_length])
            if not words:
                self._note_empty_caption(row)
        else:
            caption = " ".join(caption.strip().split())
            tgt_caption = "&&".join(strip_punctuation(cap) for cap in caption.split("&&"))
        src_item = self.encode_text(PROMPT_CN if self.chinese else PROMPT, append_bos=True, append_eos=True)
        tgt_item = self.encode_text(" {}".format(tgt_caption))
        return {
            "id": uniq_id,
            "source": src_item,
            **self.patch_image(row, 1),
            **self.seq2seq_items(tgt_item),
        }
