"""The ``gigaword`` task: its options and dataset."""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.nlg_data.summary_dataset import SummaryDataset
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask


@dataclass
class GigawordConfig(OFAConfig, GenerationEvalConfig):
    eval_rouge: bool = field(default=False, metadata={"help": "evaluation with rouge scores"})
    eval_detok: str = field(
        default="space",
        metadata={"help": "detokenize before computing BLEU or CIDEr (e.g., 'moses'); required if using "
                          "--eval-bleu or --eval-cider; use 'space' to disable detokenization; see "
                          "fairseq.data.encoders for other options"},
    )
    eval_detok_args: Optional[str] = field(
        default="{}", metadata={"help": "args for building the tokenizer, if needed, as JSON string"}
    )
    noise_ratio: float = field(default=0.0, metadata={"help": "noise ratio for prev output"})


@register_task("gigaword", dataclass=GigawordConfig)
class GigawordTask(OFATask):
    """Gigaword headline generation; ROUGE at validation with --eval-rouge."""

    dataset_cls = SummaryDataset

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "code_dict_size": self.cfg.code_dict_size,
                "num_bins": self.cfg.num_bins, "noise_ratio": self.cfg.noise_ratio}

    @property
    def generates_at_validation(self):
        return self.cfg.eval_rouge

    @property
    def valid_metric(self):
        return "rougeL_f1" if self.cfg.eval_rouge else None

    def sample_scores(self, results, sample):
        """ROUGE-L F1 (x100, stemmed) of each summary, as the original logs it."""
        from utils.metrics import rouge_scores

        return [100 * rouge_scores([r["hyp"]], [r["ref"]])["rougeL"] for r in results]
