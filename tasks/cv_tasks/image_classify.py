"""The ``image_classify`` task: its options and dataset."""
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.tasks import register_task

from data.cv_data.image_classify_dataset import ImageClassifyDataset
from data.data_utils import collate_tokens
from tasks.ofa_task import CandidateAnswerConfig, OFAConfig, OFATask


@dataclass
class ImageClassifyConfig(OFAConfig, CandidateAnswerConfig):
    uses_ema: Optional[bool] = field(default=False, metadata={"help": "whether to use ema"})


@register_task("image_classify", dataclass=ImageClassifyConfig)
class ImageClassifyTask(OFATask):
    """ImageNet classification as generation of the label name, constrained to the label set."""

    valid_metric = "score"

    dataset_cls = ImageClassifyDataset

    def __init__(self, cfg: ImageClassifyConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.uses_ema = cfg.uses_ema
        self.ans2label_dict = self.load_ans2label()
        self.build_constraint_trie(self.ans2label_dict.keys())
        self.ans2index = {answer: i for i, answer in self.index2ans.items()}

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "constraint_trie": self.constraint_trie}

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        self.build_label_batches()
        return model

    def build_label_batches(self) -> None:
        """Collated targets, decoder inputs and constraint masks of every label, ``valid_batch_size`` at a time
        (``valid_tgt_list``, ``valid_prev_output_list``, ``valid_constraint_masks_list``)."""
        bos, eos, pad = self.tgt_dict.bos(), self.tgt_dict.eos(), self.tgt_dict.pad()
        targets = [torch.cat([item, torch.LongTensor([eos])]) for item in self.answer_items]
        prev_outputs = [torch.cat([torch.LongTensor([bos]), item]) for item in self.answer_items]
        masks = []
        for prev in prev_outputs:
            mask = torch.zeros((len(prev), len(self.tgt_dict)), dtype=torch.bool)
            for i in range(len(prev)):
                mask[i, self.constraint_trie.get_next_layer(prev[: i + 1].tolist())] = True
            masks.append(mask)
        size = self.cfg.valid_batch_size
        chunks = range(0, len(targets), size)
        self.valid_tgt_list = [collate_tokens(targets[i:i + size], pad, eos) for i in chunks]
        self.valid_prev_output_list = [collate_tokens(prev_outputs[i:i + size], pad, eos) for i in chunks]
        self.valid_constraint_masks_list = [collate_tokens(masks[i:i + size], pad) for i in chunks]
