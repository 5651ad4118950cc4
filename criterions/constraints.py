"""Restricting the output vocabulary: per-position ``constraint_masks`` and the ids ``--constraint-range`` allows
(``task.vocab.constraint_tokens``)."""
from __future__ import annotations

import math
from typing import Optional

import torch
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
