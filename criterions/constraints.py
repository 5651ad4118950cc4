"""Restricting the output vocabulary: per-position ``constraint_masks`` and the ``--constraint-range`` option."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

# bos, pad, eos, unk stay allowed under --constraint-range
NUM_SPECIAL_TOKENS = 4

ConstraintRange = Tuple[int, int]


def parse_constraint_range(text: Optional[str]) -> Optional[ConstraintRange]:
    """``"start,end"`` -> ``(start, end)``; None stays None."""
    if text is None:
        return None
    try:
        start, end = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--constraint-range: expected 'start,end' (two integers), got {text!r}") from None
    if not NUM_SPECIAL_TOKENS <= start < end:
        raise ValueError(f"--constraint-range: need {NUM_SPECIAL_TOKENS} <= start < end, got {text!r}")
    return start, end


def allowed_token_ids(constraint_range: ConstraintRange, device=None) -> Tensor:
    """Vocabulary ids allowed by a constraint range: the special tokens, then ``start..end-1``."""
    start, end = constraint_range
    return torch.cat([torch.arange(NUM_SPECIAL_TOKENS, device=device), torch.arange(start, end, device=device)])


def constrain_logits(
    logits: Tensor, constraint_masks: Optional[Tensor] = None, constraint_range: Optional[ConstraintRange] = None
) -> Tensor:
    """A copy of ``logits`` [B, T, V] with every disallowed token at -inf (never written in place)."""
    if constraint_masks is not None:
        if constraint_masks.shape != logits.shape:
            raise ValueError(
                f"constraint_masks has shape {tuple(constraint_masks.shape)} but the decoder output has "
                f"{tuple(logits.shape)}; the sample's constraint_masks must cover every target position and token"
            )
        logits = logits.masked_fill(~constraint_masks, -math.inf)
    if constraint_range is not None:
        allowed = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
        allowed[allowed_token_ids(constraint_range, logits.device)] = True
        logits = logits.masked_fill(~allowed, -math.inf)
    return logits
