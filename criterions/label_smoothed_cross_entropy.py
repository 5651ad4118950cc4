"""Label-smoothed cross entropy with OFA's adjustments: vocabulary constraints, drop-worst, R-Drop.

The token-level maths lives in module functions shared with the encouraging loss
(``criterions/label_smoothed_encouraging_loss.py``), which adds a likelihood bonus on top.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II
from torch import Tensor


def constrain_logits(
    logits: Tensor, constraint_masks: Optional[Tensor] = None, allowed_tokens: Optional[Tensor] = None
) -> Tensor:
    """A copy of ``logits`` [B, T, V] with every disallowed token at -inf (never written in place)."""
    if constraint_masks is not None:
        if constraint_masks.shape != logits.shape:
            raise ValueError(
                f"constraint_masks has shape {tuple(constraint_masks.shape)} but the decoder output has "
                f"{tuple(logits.shape)}; the sample's constraint_masks must cover every target position and token"
            )
        logits = logits.masked_fill(~constraint_masks, -math.inf)
    if allowed_tokens is not None:
        allowed = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
        allowed[allowed_tokens.to(logits.device)] = True
        logits = logits.masked_fill(~allowed, -math.inf)
    return logits


@dataclass
class AdjustLabelSmoothedCrossEntropyCriterionConfig(FairseqDataclass):
    label_smoothing: float = field(
        default=0.0, metadata={"help": "label smoothing epsilon (0 disables smoothing)"}
    )
    report_accuracy: bool = field(default=False, metadata={"help": "log token accuracy"})
    ignore_prefix_size: int = field(
        default=0, metadata={"help": "leave the first N target positions out of the loss"}
    )
    ignore_eos: bool = field(default=False, metadata={"help": "leave EOS targets out of the loss"})
    sentence_avg: bool = II("optimization.sentence_avg")
    drop_worst_ratio: float = field(
        default=0.0, metadata={"help": "fraction of highest-loss target tokens dropped from each batch"}
    )
    drop_worst_after: int = field(
        default=0, metadata={"help": "drop the worst tokens only after this many updates"}
    )
    use_rdrop: bool = field(
        default=False, metadata={"help": "R-Drop: run each sample twice and add the symmetric KL of the two outputs"}
    )
    reg_alpha: float = field(default=1.0, metadata={"help": "weight of the R-Drop KL term"})
    sample_patch_num: int = field(
        default=196,
        metadata={"help": "image patches kept for the first sample of a two-sample (list) batch; 0 keeps all"},
    )
    constraint_range: Optional[str] = field(
        default=None,
        metadata={"help": "'start,end': only special tokens and ids start..end-1 may be predicted"},
    )


class TokenLoss(NamedTuple):
    """Summed loss and NLL over the kept target tokens, and how many tokens were kept."""

    loss: Tensor
    nll_loss: Tensor
    ntokens: int


def select_target_tokens(
    lprobs: Tensor,
    target: Tensor,
    padding_idx: int,
    ignore_prefix_size: int = 0,
    eos_idx: Optional[int] = None,
    constraint_masks: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Flatten [B, T, V] log-probs to the N target positions that count: no prefix, no padding, no EOS if given."""
    if ignore_prefix_size > 0:
        lprobs, target = lprobs[:, ignore_prefix_size:], target[:, ignore_prefix_size:]
        if constraint_masks is not None:
            constraint_masks = constraint_masks[:, ignore_prefix_size:]
    keep = target.ne(padding_idx)
    if eos_idx is not None:
        keep &= target.ne(eos_idx)
    return lprobs[keep], target[keep], (constraint_masks[keep] if constraint_masks is not None else None)


def label_smoothed_nll_loss(
    lprobs: Tensor,
    target: Tensor,
    epsilon: float,
    constraint_masks: Optional[Tensor] = None,
    allowed_tokens: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Per-token label-smoothed loss and NLL for [N, V] log-probs; smoothing covers only the allowed tokens."""
    nll_loss = -lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)
    if constraint_masks is not None:
        smooth_loss = -lprobs.masked_fill(~constraint_masks, 0.0).sum(dim=-1)
        eps_i = epsilon / (constraint_masks.sum(dim=-1) - 1 + 1e-6)
    elif allowed_tokens is not None:
        allowed = allowed_tokens.to(lprobs.device)
        smooth_loss = -lprobs.index_select(-1, allowed).sum(dim=-1)
        eps_i = epsilon / (allowed.numel() - 1 + 1e-6)
    else:
        smooth_loss = -lprobs.sum(dim=-1)
        eps_i = epsilon / (lprobs.size(-1) - 1)
    loss = (1.0 - epsilon - eps_i) * nll_loss + eps_i * smooth_loss
    return loss, nll_loss


def keep_tokens_by_loss(token_loss: Tensor, drop_ratio: float, paired: bool = False, drop_best: bool = False) -> Tensor:
    """Indices of the tokens kept after dropping the ``drop_ratio`` highest (or lowest) losses.

    ``paired``: the rows are two R-Drop copies stacked; copies are ranked by the first and dropped together.
    """
    ranked = token_loss[: token_loss.size(0) // 2] if paired else token_loss
    _, indices = torch.topk(ranked, k=int(ranked.size(0) * (1 - drop_ratio)), largest=drop_best)
    return torch.cat([indices, indices + ranked.size(0)]) if paired else indices


def rdrop_kl_loss(
    lprobs: Tensor, constraint_masks: Optional[Tensor] = None, allowed_tokens: Optional[Tensor] = None
) -> Tensor:
    """Symmetric KL between the two stacked R-Drop copies of [2N, V] log-probs, over the allowed tokens."""
    if constraint_masks is not None:
        # disallowed tokens are -inf in both copies; zeroing them makes their KL terms exactly 0 (not NaN)
        lprobs = lprobs.masked_fill(~constraint_masks, 0.0)
    elif allowed_tokens is not None:
        lprobs = lprobs.index_select(-1, allowed_tokens.to(lprobs.device))
    p, q = lprobs.chunk(2)
    return (F.kl_div(p, q.exp(), reduction="sum") + F.kl_div(q, p.exp(), reduction="sum")) / 2


def encouraging_bonus(lprobs: Tensor, target: Tensor, epsilon: float, log_end: float) -> Tensor:
    """Summed likelihood bonus ``log(1 - p)`` of the encouraging loss (Zhao et al. 2022), label-smoothed.

    Above ``p = log_end`` the log is replaced by its tangent, so the bonus stays finite as p -> 1.
    """
    probs = lprobs.exp()
    bonus = torch.log(torch.clamp(1.0 - probs, min=1e-5))
    if log_end != 1.0:
        tangent = (probs - log_end) / (log_end - 1.0) + math.log(1.0 - log_end)
        bonus = torch.where(probs > log_end, tangent, bonus)
    target_bonus = bonus.gather(dim=-1, index=target.unsqueeze(-1)).sum()
    return target_bonus * (1.0 - epsilon) + epsilon / lprobs.size(-1) * bonus.sum()


def adjust_label_smoothed_loss(
    lprobs: Tensor,
    target: Tensor,
    epsilon: float,
    update_num: int = 0,
    drop_worst_ratio: float = 0.0,
    drop_worst_after: int = 0,
    use_rdrop: bool = False,
    reg_alpha: float = 1.0,
    constraint_masks: Optional[Tensor] = None,
    allowed_tokens: Optional[Tensor] = None,
    log_end: Optional[float] = None,
    drop_best_ratio: float = 0.0,
    drop_best_after: int = 0,
) -> TokenLoss:
    """OFA's loss over selected [N, V] log-probs: label smoothing, drop-worst/-best, R-Drop KL and,
    when ``log_end`` is given, the encouraging-loss bonus."""
    loss, nll_loss = label_smoothed_nll_loss(lprobs, target, epsilon, constraint_masks, allowed_tokens)
    keep_steps = (
        (drop_worst_ratio, drop_worst_after, False),
        (drop_best_ratio, drop_best_after, True),
    )
    for ratio, after, drop_best in keep_steps:
        if ratio > 0 and update_num > after:
            kept = keep_tokens_by_loss(loss, ratio, paired=use_rdrop, drop_best=drop_best)
            loss, nll_loss, lprobs, target = loss[kept], nll_loss[kept], lprobs[kept], target[kept]
            if constraint_masks is not None:
                constraint_masks = constraint_masks[kept]
    ntokens = loss.numel()
    loss, nll_loss = loss.sum(), nll_loss.sum()
    if use_rdrop:
        loss = loss + reg_alpha * rdrop_kl_loss(lprobs, constraint_masks, allowed_tokens)
    if log_end is not None:
        loss = loss + encouraging_bonus(lprobs, target, epsilon, log_end)
    return TokenLoss(loss, nll_loss, ntokens)


def duplicate_for_rdrop(sample: Dict[str, Any]) -> Dict[str, Any]:
    """The sample stacked twice along the batch (``ntokens``/``nsentences`` doubled), for R-Drop's two passes."""

    def stack(value, key):
        if isinstance(value, dict):
            return {k: stack(v, f"{key}[{k!r}]") for k, v in value.items()}
        if isinstance(value, Tensor) and value.dim() > 0:
            return torch.cat([value, value])
        if isinstance(value, np.ndarray) and value.ndim > 0:
            return np.concatenate([value, value])
        if isinstance(value, list):
            return value + value
        # scalars (e.g. net_input's sample_patch_num) and text are not per-sample
        if value is None or isinstance(value, (Tensor, np.ndarray, int, float, str)):
            return value
        raise TypeError(f"R-Drop cannot duplicate {key} of type {type(value).__name__}")

    doubled = stack(sample, "sample")
    for count in ("ntokens", "nsentences"):
        if count in sample:
            doubled[count] = sample[count] * 2
    return doubled


@register_criterion("adjust_label_smoothed_cross_entropy", dataclass=AdjustLabelSmoothedCrossEntropyCriterionConfig)
class AdjustLabelSmoothedCrossEntropyCriterion(FairseqCriterion):
    """Label-smoothed cross entropy over the target tokens, with OFA's constraint, drop-worst and R-Drop options."""

    def __init__(
        self,
        task,
        sentence_avg,
        label_smoothing,
        ignore_prefix_size=0,
        ignore_eos=False,
        report_accuracy=False,
        drop_worst_ratio=0.0,
        drop_worst_after=0,
        use_rdrop=False,
        reg_alpha=1.0,
        sample_patch_num=196,
        constraint_range=None,
    ):
        super().__init__(task)
        self.sentence_avg = sentence_avg
        self.eps = label_smoothing
        self.ignore_prefix_size = ignore_prefix_size
        self.ignore_eos = ignore_eos
        self.report_accuracy = report_accuracy
        self.drop_worst_ratio = drop_worst_ratio
        self.drop_worst_after = drop_worst_after
        self.use_rdrop = use_rdrop
        self.reg_alpha = reg_alpha
        self.sample_patch_num = sample_patch_num
        self.allowed_tokens = task.vocab.constraint_tokens(constraint_range)
        # encouraging-loss knobs (see AdjustLabelSmoothedEncouragingLossCriterion); neutral for plain CE
        self.log_end: Optional[float] = None
        self.drop_best_ratio = 0.0
        self.drop_best_after = 0

    def forward(self, model, sample, update_num: int = 0):
        """Returns ``(loss, sample_size, logging_output)``; a list of two samples is scored as two views."""
        if isinstance(sample, list):
            return self._forward_two_views(model, sample, update_num)
        if self.use_rdrop:
            sample = duplicate_for_rdrop(sample)
        net_output = model(**sample["net_input"])
        result, accuracy = self.compute_loss(model, net_output, sample, update_num)
        sample_size = sample["target"].size(0) if self.sentence_avg else result.ntokens
        logging_output = {
            "loss": result.loss.data,
            "nll_loss": result.nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
        }
        if accuracy is not None:
            logging_output["n_correct"], logging_output["total"] = accuracy
        return result.loss, sample_size, logging_output

    def _forward_two_views(self, model, samples: List[Dict[str, Any]], update_num: int):
        """Pretraining batches come as two samples; the first keeps only ``sample_patch_num`` image patches."""
        first, second = samples
        if self.sample_patch_num > 0:
            first = {**first, "net_input": {**first["net_input"], "sample_patch_num": self.sample_patch_num}}
        loss_v1, sample_size_v1, log_v1 = self.forward(model, first, update_num)
        loss_v2, sample_size_v2, log_v2 = self.forward(model, second, update_num)
        loss = loss_v1 / sample_size_v1 + loss_v2 / sample_size_v2
        logging_output = {
            "loss": loss.data,
            "loss_v1": loss_v1.data,
            "loss_v2": loss_v2.data,
            "nll_loss": log_v1["nll_loss"] / sample_size_v1 + log_v2["nll_loss"] / sample_size_v2,
            "ntokens": log_v1["ntokens"] + log_v2["ntokens"],
            "nsentences": log_v1["nsentences"] + log_v2["nsentences"],
            "sample_size": 1,
            "sample_size_v1": sample_size_v1,
            "sample_size_v2": sample_size_v2,
        }
        return loss, 1, logging_output

    def get_lprobs_and_target(self, model, net_output, sample) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Selected [N, V] log-probs, [N] targets and [N, V] constraint masks (or None)."""
        constraint_masks = sample.get("constraint_masks")
        logits = constrain_logits(net_output[0], constraint_masks, self.allowed_tokens)
        lprobs = model.get_normalized_probs((logits, *net_output[1:]), log_probs=True)
        if sample.get("conf") is not None:
            # VQA: each target's log-probs are scaled by its answer confidence
            lprobs = lprobs * sample["conf"][:, None, None]
        target = model.get_targets(sample, net_output)
        eos_idx = self.task.target_dictionary.eos() if self.ignore_eos else None
        return select_target_tokens(lprobs, target, self.padding_idx, self.ignore_prefix_size, eos_idx, constraint_masks)

    def compute_loss(
        self, model, net_output, sample, update_num: int = 0
    ) -> Tuple[TokenLoss, Optional[Tuple[int, int]]]:
        """The loss over the sample's target tokens and, with ``report_accuracy``, (n_correct, total)."""
        lprobs, target, constraint_masks = self.get_lprobs_and_target(model, net_output, sample)
        result = adjust_label_smoothed_loss(
            lprobs,
            target,
            self.eps,
            update_num,
            drop_worst_ratio=self.drop_worst_ratio,
            drop_worst_after=self.drop_worst_after,
            use_rdrop=self.use_rdrop,
            reg_alpha=self.reg_alpha,
            constraint_masks=constraint_masks,
            allowed_tokens=self.allowed_tokens,
            log_end=self.log_end,
            drop_best_ratio=self.drop_best_ratio,
            drop_best_after=self.drop_best_after,
        )
        accuracy = None
        if self.report_accuracy:
            accuracy = (utils.item(lprobs.argmax(dim=-1).eq(target).sum()), target.numel())
        return result, accuracy

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs from data parallel training."""

        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size = total("sample_size")
        sample_size_v1, sample_size_v2 = total("sample_size_v1"), total("sample_size_v2")
        # like the original: nll_loss is per sample_size (not per token) and in nats
        metrics.log_scalar("loss", total("loss") / sample_size, sample_size, round=3)
        metrics.log_scalar("loss_v1", total("loss_v1") / max(sample_size_v1, 1), max(sample_size_v1, 1), round=3)
        metrics.log_scalar("loss_v2", total("loss_v2") / max(sample_size_v2, 1), max(sample_size_v2, 1), round=3)
        metrics.log_scalar("nll_loss", total("nll_loss") / sample_size, total("ntokens"), round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        for key in ("ntokens", "nsentences", "sample_size", "sample_size_v1", "sample_size_v2"):
            metrics.log_scalar(key, total(key), 1, round=3)
        n_total = utils.item(total("total"))
        if n_total > 0:
            metrics.log_scalar("total", n_total)
            metrics.log_scalar("n_correct", utils.item(total("n_correct")))
            metrics.log_derived(
                "accuracy",
                lambda meters: round(meters["n_correct"].sum * 100.0 / meters["total"].sum, 3)
                if meters["total"].sum > 0
                else float("nan"),
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
