"""Self-critical sequence training (Rennie et al. 2017): a shared loop, and the CIDEr-D-rewarded criterion.

The loop generates candidates with ``task.scst_generator``, scores them with a reward function
(``ScstCriterion.candidate_scores``), uses each candidate's reward minus the mean reward of the
other candidates of the same sample as advantage, and weights the candidates' teacher-forced
log-likelihoods with it.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.data.data_utils import collate_tokens
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II
from torch import Tensor

from criterions.label_smoothed_cross_entropy import constrain_logits
from data.ofa_dataset import strip_punctuation
from utils.cider_d import CiderD

Hypotheses = List[List[Dict[str, Any]]]


def scst_loss(lprobs: Tensor, target: Tensor, reward: Tensor, padding_idx: int):
    """Summed ``-reward * log p(token)`` over the non-padding tokens of [N, T] targets, and their count."""
    token_lprobs = lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)
    loss = -token_lprobs * reward.unsqueeze(-1)
    not_pad = target.ne(padding_idx)
    return loss.masked_fill(~not_pad, 0.0).sum(), int(not_pad.sum())


def leave_one_out_advantage(scores: Tensor, candidates_per_sample: int) -> Tensor:
    """Each candidate's score minus the mean score of the other candidates of its sample."""
    if candidates_per_sample < 2:
        raise ValueError("SCST needs at least 2 candidates per sample for its baseline (set beam >= 2 in --scst-args)")
    grouped = scores.view(-1, candidates_per_sample)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (candidates_per_sample - 1)
    return (grouped - baseline).view(-1)


def repeat_each(net_input: Dict[str, Any], times: int) -> Dict[str, Any]:
    """``net_input`` with every per-sample tensor repeated ``times`` times in place (a, a, b, b, ...)."""
    return {
        key: value.repeat_interleave(times, dim=0) if isinstance(value, Tensor) and value.dim() > 0 else value
        for key, value in net_input.items()
    }


@dataclass
class ScstCriterionConfig(FairseqDataclass):
    ignore_prefix_size: int = field(
        default=0, metadata={"help": "leave the first N target positions out of the loss"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")
    constraint_range: Optional[str] = field(
        default=None,
        metadata={"help": "'start,end': only special tokens and ids start..end-1 may be predicted"},
    )


class ScstCriterion(FairseqCriterion):
    """The SCST loop; subclasses define the reward with ``candidate_scores``."""

    def __init__(self, task, sentence_avg, ignore_prefix_size=0, constraint_range=None):
        super().__init__(task)
        self.sentence_avg = sentence_avg
        self.ignore_prefix_size = ignore_prefix_size
        self.allowed_tokens = task.vocab.constraint_tokens(constraint_range)

    def candidate_scores(self, sample: Dict[str, Any], candidates: Sequence[Tensor]) -> Tensor:
        """Reward of each candidate (token tensors, grouped per sample), as a 1-D tensor."""
        raise NotImplementedError

    def forward(self, model, sample, update_num: int = 0):
        """Returns ``(loss, sample_size, logging_output)``; ``score`` logs the summed candidate rewards."""
        hypotheses = self.generate_candidates(model, sample)
        candidates = [hypo["tokens"] for per_sample in hypotheses for hypo in per_sample]
        counts = {len(per_sample) for per_sample in hypotheses}
        if len(counts) != 1:
            raise ValueError(f"SCST needs as many candidates for every sample, got {[len(h) for h in hypotheses]}")
        per_sample = counts.pop()
        scores = self.candidate_scores(sample, candidates)
        advantage = leave_one_out_advantage(scores, per_sample).to(sample["target"].device)

        prev_output_tokens = collate_tokens(
            candidates, self.padding_idx, self.task.target_dictionary.bos(), move_eos_to_beginning=True
        )
        target = collate_tokens(candidates, self.padding_idx)
        net_input = {**repeat_each(sample["net_input"], per_sample), "prev_output_tokens": prev_output_tokens}
        net_output = model(**net_input)
        logits = constrain_logits(net_output[0], allowed_tokens=self.allowed_tokens)
        lprobs = model.get_normalized_probs((logits, *net_output[1:]), log_probs=True)
        # time is dim 1 (the original sliced dim 0 here, dropping candidates instead of prefix tokens)
        lprobs, target = lprobs[:, self.ignore_prefix_size:], target[:, self.ignore_prefix_size:]
        loss, ntokens = scst_loss(lprobs, target, advantage, self.padding_idx)

        nsentences = target.size(0)
        sample_size = nsentences if self.sentence_avg else ntokens
        logging_output = {
            "loss": loss.data,
            "score": utils.item(scores.sum()),
            "ntokens": ntokens,
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    def generate_candidates(self, model, sample) -> Hypotheses:
        """Candidates from ``task.scst_generator`` (built by the task from ``--scst-args``), in eval mode."""
        generator = getattr(self.task, "scst_generator", None)
        if generator is None:
            raise RuntimeError(
                f"{type(self).__name__} needs the task's SCST generator: run the task with --scst "
                "(and --scst-args for the generation options)"
            )
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return generator.generate([model], sample)
        finally:
            model.train(was_training)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs from data parallel training."""

        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size, nsentences = total("sample_size"), total("nsentences")
        metrics.log_scalar("loss", total("loss") / sample_size, sample_size, round=3)
        metrics.log_scalar("score", total("score") / nsentences, nsentences, round=3)
        for key in ("ntokens", "nsentences", "sample_size"):
            metrics.log_scalar(key, total(key), 1, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


@dataclass
class ScstRewardCriterionConfig(ScstCriterionConfig):
    scst_cider_cached_tokens: str = field(
        default="coco-train-words.p",
        metadata={"help": "pickle of CIDEr-D document frequencies (the original's coco-train-words.p format), "
                          "or 'corpus' to compute them from each batch's references"},
    )


def cider_sentence(text: str) -> str:
    """Caption as the CIDEr-D cached tokens expect it: no punctuation, ending in an ``<eos>`` word."""
    text = strip_punctuation(text.strip())
    return text + " <eos>"


@register_criterion("scst_reward_criterion", dataclass=ScstRewardCriterionConfig)
class ScstRewardCriterion(ScstCriterion):
    """SCST with CIDEr-D reward against the references in the sample's target (joined by ``&&``)."""

    CIDER_REWARD_WEIGHT = 1.0

    def __init__(self, task, scst_cider_cached_tokens, sentence_avg, ignore_prefix_size=0, constraint_range=None):
        super().__init__(task, sentence_avg, ignore_prefix_size, constraint_range)
        self.cider_scorer = CiderD(df=scst_cider_cached_tokens)

    def decode(self, tokens: Tensor) -> str:
        """Token ids to text (special tokens dropped, BPE undone)."""
        text = self.task.target_dictionary.string(tokens.int().cpu())
        return self.task.bpe.decode(text).strip()

    def candidate_scores(self, sample: Dict[str, Any], candidates: Sequence[Tensor]) -> Tensor:
        references = [
            [cider_sentence(ref) for ref in self.decode(utils.strip_pad(target, self.padding_idx)).split("&&")]
            for target in sample["target"]
        ]
        per_sample = len(candidates) // len(references)
        scores = self.cider_scorer.score(
            [cider_sentence(self.decode(tokens)) for tokens in candidates],
            [references[i // per_sample] for i in range(len(candidates))],
        )
        return self.CIDER_REWARD_WEIGHT * torch.from_numpy(scores)
