"""The seven GLUE tasks: one or two sentences and a label, answered by one word after the prompt."""
from __future__ import annotations

import torch

from data.ofa_dataset import OFADataset


class GlueDataset(OFADataset):
    """Subclasses set ``prompt`` (``{}`` per sentence, in ``prompt_order``) and ``labels`` (column -> word)."""

    prompt: str = ""
    labels: dict[str, str] = {}
    prompt_order: tuple[int, ...] = (0, 1)

    @property
    def num_selected_cols(self):
        return (len(self.prompt_order) + 1,)

    def process_row(self, index, row):
        *sentences, label = row
        if label not in self.labels:
            raise row.error(len(sentences), f"unknown label {label!r} (expected one of {sorted(self.labels)})")
        answer = self.labels[label]
        sentences = [" ".join(s.lower().strip().split()[: self.max_src_length]) for s in sentences]
        src_item = self.encode_text(self.prompt.format(*(sentences[i] for i in self.prompt_order)))
        tgt_item = self.encode_text(" {}".format(answer))
        if tgt_item.size(0) != 1:
            raise ValueError(f"GLUE answer {answer!r} must be a single BPE token")
        src_item = torch.cat([self.bos_item, src_item, self.eos_item])
        decoder = self.decoder_items(src_item, tgt_item, append_eos=False)
        del decoder["decoder_prompt"]  # not part of the original GLUE batches
        return {"id": index, "source": src_item, **decoder, "ref_dict": {answer: 1.0}}


class COLADataset(GlueDataset):
    prompt = ' is the text " {} " grammatically correct?'
    labels = {"0": "no", "1": "yes"}
    prompt_order = (0,)


class MNLIDataset(GlueDataset):
    prompt = ' can text1 " {} " imply text2 " {} "?'
    labels = {"0": "maybe", "1": "yes", "2": "no"}


class MRPCDataset(GlueDataset):
    prompt = ' does text1 " {} " and text2 " {} " have the same semantics?'
    labels = {"0": "no", "1": "yes"}


class QNLIDataset(GlueDataset):
    # rows are (question, sentence); the prompt names the sentence first
    prompt = ' does " {} " contain the answer to question " {} "?'
    labels = {"0": "no", "1": "yes", "not_entailment": "no", "entailment": "yes"}
    prompt_order = (1, 0)


class QQPDataset(GlueDataset):
    prompt = ' is question " {} " and question " {} " equivalent?'
    labels = {"0": "no", "1": "yes"}


class RTEDataset(GlueDataset):
    prompt = ' can text1 " {} " imply text2 " {} "?'
    labels = {"not_entailment": "no", "entailment": "yes"}


class SST2Dataset(GlueDataset):
    prompt = ' is the sentiment of text " {} " positive or negative?'
    labels = {"0": "negative", "1": "positive"}
    prompt_order = (0,)
