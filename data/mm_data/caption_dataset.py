"""Image captioning rows: uniq-id, image, caption (references joined with ``&&`` in valid/test files)."""
from __future__ import annotations

from data.data_utils import strip_punctuation
from data.ofa_dataset import OFADataset


class CaptionDataset(OFADataset):
    """Prompt `` what does the image describe?``; target the caption (all references at valid time)."""

    num_selected_cols = (3,)

    def __init__(self, *args, scst: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.scst = scst

    def process_row(self, index, row):
        uniq_id, _, caption = row
        if self.split == "train" and not self.scst:
            words = strip_punctuation(caption).split()
            tgt_caption = " ".join(words[: self.max_tgt_length])
        else:
            caption = " ".join(caption.strip().split())
            tgt_caption = "&&".join(strip_punctuation(cap) for cap in caption.split("&&"))
        src_item = self.encode_text(" what does the image describe?", append_bos=True, append_eos=True)
        tgt_item = self.encode_text(" {}".format(tgt_caption))
        return {
            "id": uniq_id,
            "source": src_item,
            **self.patch_image(row, 1),
            **self.seq2seq_items(tgt_item),
        }
