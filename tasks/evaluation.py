"""Helpers shared by the tasks' evaluation steps: decoding hypotheses and scoring closed answer sets."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from utils import metrics


def symbols_to_strip(task, generator) -> set[int]:
    """Token ids left out of decoded text (BOS/EOS unless the generator says otherwise)."""
    return getattr(generator, "symbols_to_strip_from_output", None) or {task.vocab.bos, task.vocab.eos}


def decode_tokens(task, generator, tokens: torch.Tensor) -> str:
    """Token ids -> detokenized text with the task's dictionary and BPE (``<code_i>``/``<bin_i>`` kept)."""
    strip = symbols_to_strip(task, generator)
    return task.bpe.decode(task.tgt_dict.string(tokens.int().cpu(), extra_symbols_to_ignore=strip))


def question_id(sample_id) -> int | str:
    """A VQA question id as the original writes it (an int); ids that are not numbers stay strings."""
    text = str(sample_id)
    return int(text) if text.lstrip("-").isdigit() else text


def sample_ids(sample: dict) -> list:
    """The batch's sample ids as Python values (collaters give a numpy array or a tensor)."""
    ids = sample["id"]
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def best_tokens(hypos: list, i: int) -> torch.Tensor:
    """Tokens of the best hypothesis of sample ``i``."""
    if not hypos[i]:
        raise ValueError(f"the generator finished no hypothesis for sample {i} of a batch; raise --max-len-b "
                         "(evaluate.py, predict.py) or max_len_b in --eval-args (validation in train.py)")
    return hypos[i][0]["tokens"]


def soft_scores(sample: dict, answers: Sequence[str]) -> list[float]:
    """VQA-style soft accuracy of each answer against the sample's ``ref_dict`` (plain accuracy for one label)."""
    return [metrics.vqa_soft_accuracy(answer, ref_dict) for answer, ref_dict in zip(answers, sample["ref_dict"])]


def encode(model, sample: dict) -> dict:
    """The encoder output of ``sample``'s inputs."""
    net_input = sample["net_input"]
    return model.encoder(
        net_input["src_tokens"],
        src_lengths=net_input["src_lengths"],
        patch_images=net_input.get("patch_images"),
        patch_masks=net_input.get("patch_masks"),
    )


def score_candidates(
    model,
    encoder_out: dict,
    prev_output_tokens: torch.Tensor,
    target: torch.Tensor,
    constraint_masks: torch.Tensor,
    num_candidates: int,
    pad: int,
) -> torch.Tensor:
    """Teacher-forced log-likelihood of ``num_candidates`` answers per sample: (B * K, T) inputs -> (B, K).

    Rows are ordered sample-major (all candidates of sample 0 first). Positions whose constraint mask allows
    nothing (the decoder prompt) and padding do not count.
    """
    batch_size = prev_output_tokens.size(0) // num_candidates
    new_order = torch.arange(batch_size, device=prev_output_tokens.device).repeat_interleave(num_candidates)
    expanded = model.encoder.reorder_encoder_out(encoder_out, new_order)
    logits, extra = model.decoder(prev_output_tokens, encoder_out=expanded)
    logits = logits.masked_fill(~constraint_masks, -math.inf)
    lprobs = model.get_normalized_probs((logits, extra), log_probs=True)
    scores = lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)
    scores = scores.masked_fill(target.eq(pad) | (~constraint_masks).all(2), 0)
    return scores.sum(1).view(batch_size, num_candidates)

