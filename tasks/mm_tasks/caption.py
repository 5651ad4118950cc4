"""The ``caption`` task: its options and dataset."""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.caption_dataset import CaptionDataset
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask, ScstConfig


@dataclass
class CaptionConfig(OFAConfig, GenerationEvalConfig, ScstConfig):
    eval_bleu: bool = field(default=False, metadata={"help": "evaluation with BLEU scores"})
    eval_cider: bool = field(default=False, metadata={"help": "evaluation with CIDEr scores"})
    eval_tokenized_bleu: bool = field(default=False, metadata={"help": "compute tokenized BLEU instead of sacrebleu"})
    eval_cider_cached_tokens: Optional[str] = field(
        default=None, metadata={"help": "path to cached cPickle file used to calculate CIDEr scores"}
    )


@register_task("caption", dataclass=CaptionConfig)
class CaptionTask(OFATask):
    """Image captioning (COCO); CIDEr/BLEU at validation with --eval-cider/--eval-bleu, SCST with --scst."""

    dataset_cls = CaptionDataset

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "scst": self.cfg.scst}

    @property
    def generates_at_validation(self):
        return self.cfg.eval_bleu or self.cfg.eval_cider
