"""The ``caption`` task: its options and dataset."""
import string
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.caption_dataset import CaptionDataset
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask, ScstConfig


NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


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

    def __init__(self, cfg: CaptionConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.eval_bleu:
            raise ValueError("--eval-bleu is not supported; validate captions with --eval-cider "
                             "(and score BLEU with evaluate.py)")
        self.cider_scorer = None
        if cfg.eval_cider:
            from utils.cider_d import CORPUS, CiderD
            self.cider_scorer = CiderD(df=cfg.eval_cider_cached_tokens or CORPUS)

    @property
    def generates_at_validation(self):
        return self.cfg.eval_cider

    @property
    def valid_metric(self):
        return "cider" if self.cfg.eval_cider else None

    def sample_scores(self, results, sample):
        """CIDEr-D of each caption against its references (document frequencies of --eval-cider-cached-tokens)."""
        from utils.eval_utils import caption_references

        references = [[ref.translate(NO_PUNCTUATION).strip() for ref in refs] for refs in caption_references(self, sample)]
        return self.cider_scorer.score([r["caption"] for r in results], references).tolist()
