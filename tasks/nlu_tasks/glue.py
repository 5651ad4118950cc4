"""The GLUE tasks: text classification answered with one constrained word."""

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.logging import metrics
from fairseq.tasks import register_task

from data.nlu_data import glue_dataset
from tasks.ofa_task import OFAConfig, OFATask, PromptConfig
from utils.metrics import classification_scores


@dataclass
class GlueConfig(OFAConfig, PromptConfig):
    ans2label_dict: Optional[str] = field(default='{"no": 0, "yes": 1}', metadata={"help": "answer to label dict"})


class GlueTask(OFATask):
    """Answers are constrained to ``ans2label_dict``; the decoder predicts the word right after its prompt."""

    metric_name = "acc"
    #: the answer F1 is computed for (MRPC and QQP report F1 on "yes", as the original)
    f1_positive_answer: Optional[str] = None

    def __init__(self, cfg: GlueConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.ans2label_dict = self.load_ans2label()
        self.build_constraint_trie(self.ans2label_dict.keys())

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "constraint_trie": self.constraint_trie,
                "prompt_type": self.cfg.prompt_type}

    def eval_step(self, generator, models, sample, **kwargs):
        """The constrained next-token prediction after the decoder prompt is the answer word."""
        logits, _ = models[0](**sample["net_input"])
        logits = logits.masked_fill(~sample["constraint_masks"], -math.inf)
        last_positions = sample["net_input"]["prev_output_tokens"].ne(self.vocab.pad).sum(1) - 1
        predictions = logits[torch.arange(logits.size(0), device=logits.device), last_positions].argmax(-1).tolist()
        hyps = [self.bpe.decode(self.src_dict[token]).strip() for token in predictions]
        refs = [next(iter(ref_dict)) for ref_dict in sample["ref_dict"]]
        results = [{"hyp": hyp, "ref": ref} for hyp, ref in zip(hyps, refs)]
        return results, [float(hyp == ref) for hyp, ref in zip(hyps, refs)]

    def compute_metrics(self, records):
        """``acc``, plus ``f1`` on the positive answer (MRPC, QQP) and ``mcc`` (CoLA)."""
        results = [record["result"] for record in records]
        if not results:
            return {}
        scores = classification_scores([r["hyp"] for r in results], [r["ref"] for r in results],
                                       positive_label=self.f1_positive_answer, mcc=self.metric_name == "mcc")
        return {"acc": scores.pop("accuracy"), **scores}


@register_task("cola", dataclass=GlueConfig)
class COLATask(GlueTask):
    """CoLA is selected by Matthews correlation, from confusion counts summed over the validation set."""

    dataset_cls = glue_dataset.COLADataset
    metric_name = "mcc"
    COUNTS = ("tp", "tn", "fp", "fn")

    def valid_metrics(self, sample, model):
        results, _ = self.eval_step(None, [model], sample)
        pairs = [(r["hyp"] == "yes", r["ref"] == "yes") for r in results]
        return {"_tp": sum(h and r for h, r in pairs), "_tn": sum(not h and not r for h, r in pairs),
                "_fp": sum(h and not r for h, r in pairs), "_fn": sum(not h and r for h, r in pairs)}

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if not any(f"_{c}" in log for log in logging_outputs for c in self.COUNTS):
            return
        for count in self.COUNTS:
            metrics.log_scalar(f"_{count}", sum(log.get(f"_{count}", 0) for log in logging_outputs))
        metrics.log_derived("mcc", lambda meters: round(matthews_corrcoef(*(meters[f"_{c}"].sum for c in self.COUNTS)), 4))


def matthews_corrcoef(tp: float, tn: float, fp: float, fn: float) -> float:
    """Matthews correlation from confusion counts (0 when a margin is empty, like scikit-learn)."""
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


@dataclass
class MNLIConfig(GlueConfig):
    ans2label_dict: Optional[str] = field(
        default='{"maybe": 0, "yes": 1, "no": 2}', metadata={"help": "answer to label dict"}
    )


@register_task("mnli", dataclass=MNLIConfig)
class MNLITask(GlueTask):
    dataset_cls = glue_dataset.MNLIDataset


@register_task("mrpc", dataclass=GlueConfig)
class MRPCTask(GlueTask):
    dataset_cls = glue_dataset.MRPCDataset
    f1_positive_answer = "yes"


@register_task("qnli", dataclass=GlueConfig)
class QNLITask(GlueTask):
    dataset_cls = glue_dataset.QNLIDataset


@register_task("qqp", dataclass=GlueConfig)
class QQPTask(GlueTask):
    dataset_cls = glue_dataset.QQPDataset
    f1_positive_answer = "yes"


@register_task("rte", dataclass=GlueConfig)
class RTETask(GlueTask):
    dataset_cls = glue_dataset.RTEDataset


@dataclass
class SST2Config(GlueConfig):
    ans2label_dict: Optional[str] = field(
        default='{"negative": 0, "positive": 1}', metadata={"help": "answer to label dict"}
    )


@register_task("sst2", dataclass=SST2Config)
class SST2Task(GlueTask):
    dataset_cls = glue_dataset.SST2Dataset
