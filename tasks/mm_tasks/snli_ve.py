"""The ``snli_ve`` task: its options and dataset."""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.snli_ve_dataset import SnliVeDataset
from tasks.ofa_task import CandidateAnswerConfig, OFAConfig, OFATask, PromptConfig


@dataclass
class SnliVeConfig(OFAConfig, CandidateAnswerConfig, PromptConfig):
    ans2label_dict: Optional[str] = field(
        default='{"no": 0, "yes":1, "maybe": 2}', metadata={"help": "answer to label dict"}
    )
    add_caption: bool = field(default=False, metadata={"help": "add caption to encoder"})


@register_task("snli_ve", dataclass=SnliVeConfig)
class SnliVeTask(OFATask):
    """Visual entailment: yes / no / maybe, scored over the candidate answers at validation."""

    valid_metric = "snli_score"

    dataset_cls = SnliVeDataset

    def __init__(self, cfg: SnliVeConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.ans2label_dict = self.load_ans2label()
        self.build_constraint_trie(self.ans2label_dict.keys())

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "add_caption": self.cfg.add_caption,
                "constraint_trie": self.constraint_trie, "prompt_type": self.cfg.prompt_type}

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        self.build_candidate_batches()
        return model
