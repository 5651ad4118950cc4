"""All-candidate scoring over an answer trie (VQA ``allcand``, SNLI-VE): the original's scores, much faster.

The original scores every (question, answer) pair with a full decoder pass over ``prompt + answer`` and the
full-vocabulary output projection, then normalises each position over the tokens the answer trie allows
there. The score of an answer is therefore a sum over the trie nodes on its path of
``logit(next token) - logsumexp(logits of the node's children)``, and a node's hidden state depends only on the
prompt and the node's prefix. So here, per question, the prompt is decoded once (cached keys and values), every
trie node on an answer path is decoded once (level by level, reusing its parent's cache, the encoder keys shared
by all rows), and logits are computed only for each node's children.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class _Level:
    """The trie nodes of one depth that lie on answer paths."""

    parents: list[int] = field(default_factory=list)  # row of each node's parent in the previous level
    tokens: list[int] = field(default_factory=list)  # the token leading to each node
    children: list[list[int]] = field(default_factory=list)  # tokens the trie allows after each node


@dataclass
class CandidatePlan:
    """Trie nodes by depth, and per answer the (depth, row, target token) of each scored position."""

    levels: list[_Level]
    paths: list[list[tuple[int, int, int]]]


def plan_candidates(answers: Sequence[Tensor], trie, bos: int, eos: int) -> CandidatePlan:
    """Group the positions of ``answers`` (token ids without bos/eos) by trie node; ``trie.get_next_layer``
    gives the allowed tokens after a ``[bos] + prefix``."""
    levels: list[_Level] = []
    rows: list[dict[tuple[int, ...], int]] = []
    paths = []
    for answer in answers:
        tokens = [int(t) for t in answer]
        path = []
        for depth in range(len(tokens) + 1):
            if depth == len(levels):
                levels.append(_Level())
                rows.append({})
            prefix = tuple(tokens[:depth])
            row = rows[depth].get(prefix)
            if row is None:
                level = levels[depth]
                row = rows[depth][prefix] = len(level.tokens)
                level.parents.append(rows[depth - 1][prefix[:-1]] if depth else 0)
                level.tokens.append(prefix[-1] if depth else bos)
                level.children.append([int(t) for t in trie.get_next_layer([bos, *prefix])])
            path.append((depth, row, tokens[depth] if depth < len(tokens) else eos))
        paths.append(path)
    return CandidatePlan(levels, paths)


def _node_log_probs(features: Tensor, weight: Tensor, level: _Level, targets: dict[tuple[int, int], int]):
    """Log-probabilities of ``targets`` ((row, token) -> slot) normalised over each row's allowed children."""
    vocab = sorted({t for children in level.children for t in children})
    column = {t: i for i, t in enumerate(vocab)}
    logits = features @ weight[vocab].t().to(features.dtype)  # (rows, allowed tokens of this depth)
    width = max(len(children) for children in level.children)
    child_cols = torch.zeros(len(level.children), width, dtype=torch.long)
    valid = torch.zeros(len(level.children), width, dtype=torch.bool)
    for row, children in enumerate(level.children):
        child_cols[row, : len(children)] = torch.tensor([column[t] for t in children])
        valid[row, : len(children)] = True
    child_logits = logits.float().gather(1, child_cols.to(logits.device))
    lse = child_logits.masked_fill(~valid.to(logits.device), float("-inf")).logsumexp(dim=1)
    out = torch.full((len(targets),), float("-inf"), device=logits.device)
    known = [(slot, row, column[token]) for (row, token), slot in targets.items()
             if token in set(level.children[row])]
    if known:
        slots, rows, cols = (torch.tensor(x, device=logits.device) for x in zip(*known))
        out[slots] = logits[rows, cols].float() - lse[rows]
    return out


@torch.no_grad()
def score_candidates_with_trie(model, encoder_out: dict, prompts: Sequence[Tensor], answers: Sequence[Tensor],
                               trie, plan: CandidatePlan | None = None) -> Tensor:
    """Log-likelihood of every answer after each sample's decoder prompt, normalised over the trie-allowed
    tokens at each position as the original does: (B, K) float32 for B prompts (each starting with bos) and K
    answers. ``plan`` (from :func:`plan_candidates`) may be reused across batches with the same answers."""
    decoder = model.decoder
    bos, eos = decoder.dictionary.bos(), decoder.dictionary.eos()
    plan = plan or plan_candidates(answers, trie, bos, eos)
    weight = decoder.output_projection.weight
    # per depth, the (row, target) pairs to read, each answer position pointing at one of them
    targets: list[dict[tuple[int, int], int]] = [{} for _ in plan.levels]
    slots = torch.full((len(plan.levels), len(plan.paths)), -1, dtype=torch.long)  # (depth, answer) -> slot
    for k, path in enumerate(plan.paths):
        for depth, row, token in path:
            slots[depth, k] = targets[depth].setdefault((row, token), len(targets[depth]))
    scores = []
    for b, prompt in enumerate(prompts):
        device = encoder_out["encoder_out"][0].device
        sample_out = model.encoder.reorder_encoder_out(encoder_out, torch.tensor([b], device=device))
        prompt = torch.as_tensor(prompt, dtype=torch.long, device=device).view(1, -1)
        state: dict = {}
        for t in range(1, prompt.size(1) + 1):  # the prompt, once, into the cache
            features, _ = decoder(prompt[:, :t], encoder_out=sample_out, incremental_state=state, features_only=True)
        written = prompt
        total = torch.zeros(len(plan.paths), device=device)
        for depth, level in enumerate(plan.levels):
            if depth:
                order = torch.tensor(level.parents, device=device)
                decoder.reorder_incremental_state_scripting(state, order)
                new_tokens = torch.tensor(level.tokens, device=device).view(-1, 1)
                written = torch.cat([written[order], new_tokens], dim=1)
                features, _ = decoder(written, encoder_out=sample_out, incremental_state=state, features_only=True)
            log_probs = _node_log_probs(features[:, -1], weight, level, targets[depth])
            at = slots[depth].to(device)
            total += torch.where(at >= 0, log_probs[at.clamp(min=0)], 0.0)
        scores.append(total)
    return torch.stack(scores)
