"""Gigaword summarisation rows: article, summary."""
from __future__ import annotations

import torch

from data.ofa_dataset import OFADataset


class SummaryDataset(OFADataset):
    """Source `` what is the summary of article " {} "?``; target the summary, fed back with ``noise_ratio``
    of its tokens replaced by random text tokens."""

    num_selected_cols = (2,)
    prompt = ' what is the summary of article " {} "?'

    def __init__(self, *args, noise_ratio: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.noise_ratio = noise_ratio

    def process_row(self, index, row):
        source, target = row
        target_str = target.lower()
        source = self.pre_caption(source, max_words=self.max_src_length).replace("<unk>", "unk")
        target = self.pre_caption(target, max_words=self.max_tgt_length).replace("<unk>", "unk")
        src_item = self.encode_text(self.prompt.format(source), length=self.max_src_length)
        src_item = torch.cat([self.bos_item, src_item, self.eos_item])
        tgt_item = self.encode_text(target)
        return {
            "id": index,
            "source": src_item,
            **self.seq2seq_items(tgt_item, decoder_input=self.add_noise_to_tgt(tgt_item.clone(), self.noise_ratio)),
            "target_str": target_str,
        }

    def add_noise_to_tgt(self, target: torch.Tensor, p: float) -> torch.Tensor:
        """Replace each token with probability ``p`` by a random text token (never a code or bin)."""
        noise = torch.rand(target.size(0)) < p
        target[noise] = torch.randint(self.vocab.text.start, self.vocab.text.stop, size=(int(noise.sum()),))
        return target
