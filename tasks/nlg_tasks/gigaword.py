"""The ``gigaword`` task: its options, dataset and evaluation (ROUGE)."""
from dataclasses import dataclass, field

from fairseq.tasks import register_task

from data.nlg_data.summary_dataset import SummaryDataset
from tasks.evaluation import best_tokens, decode_tokens
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask
from utils import metrics


@dataclass
class GigawordConfig(OFAConfig, GenerationEvalConfig):
    eval_rouge: bool = field(default=False, metadata={"help": "evaluation with rouge scores"})
    noise_ratio: float = field(default=0.0, metadata={"help": "noise ratio for prev output"})


@register_task("gigaword", dataclass=GigawordConfig)
class GigawordTask(OFATask):
    """Gigaword headline generation; ``rougeL_f1`` (ROUGE-L F1 x 100, stemmed) validated with --eval-rouge."""

    dataset_cls = SummaryDataset
    metric_name = "rougeL_f1"
    metric_flag = "eval_rouge"
    metric_generates = True

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "noise_ratio": self.cfg.noise_ratio}

    def eval_step(self, generator, models, sample, **kwargs):
        """Beam-search summaries, re-tokenized like the references (digits masked as ``#``)."""
        hypos = self.inference_step(generator, models, sample)
        results = []
        for i in range(len(hypos)):
            hyp = decode_tokens(self, generator, best_tokens(hypos, i)).lower().strip()
            results.append({"hyp": metrics.fix_tokenization(hyp).replace("1", "#"), "ref": sample["target_strs"][i]})
        return results, None

    def sample_scores(self, results, sample):
        return [100 * metrics.rouge_scores([r["hyp"]], [r["ref"]])["rougeL"] for r in results]

    def compute_metrics(self, records):
        """Mean ROUGE-1/2/L F1 (x 100, stemmed) over all summaries; ROUGE-L under ``rougeL_f1``."""
        results = [record["result"] for record in records]
        if not results:
            return {}
        scores = metrics.rouge_scores([r["hyp"] for r in results], [r["ref"] for r in results])
        return {"rouge1_f1": 100 * scores["rouge1"], "rouge2_f1": 100 * scores["rouge2"],
                self.metric_name: 100 * scores["rougeL"]}
