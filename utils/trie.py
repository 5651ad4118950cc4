"""Prefix tree over token-id sequences: which tokens may follow a prefix (constrained decoding)."""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence

import torch


class Trie:
    """Token-id trie; sequences are inserted as ``[bos] + tokens + [eos]`` by the tasks.

    ``get_next_layer(prefix)`` lists the tokens that continue ``prefix`` inside the trie;
    a prefix that leaves the trie can only be closed, so it gets ``[eos]``.
    """

    def __init__(self, eos: int):
        self.eos = eos
        self.root: Dict[int, dict] = {}

    def insert(self, tokens: Iterable[int]) -> None:
        """Add one token sequence."""
        node = self.root
        for token in tokens:
            node = node.setdefault(int(token), {})

    def get_next_layer(self, prefix: Iterable[int]) -> List[int]:
        """Tokens allowed after ``prefix`` (in insertion order), ``[eos]`` if ``prefix`` is not in the trie."""
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return [self.eos]
        return list(node)

    def answer_masks(self, answer: Sequence[int], vocab_size: int, bos: int) -> torch.Tensor:
        """(len(answer), vocab_size) bool: row i allows the tokens the trie lets follow ``[bos] + answer[:i]``
        (``answer`` ends with eos), the constraint mask of teacher-forced answer positions."""
        answer = [int(token) for token in answer]
        mask = torch.zeros((len(answer), vocab_size), dtype=torch.bool)
        for i in range(len(answer)):
            mask[i, self.get_next_layer([bos] + answer[:i])] = True
        return mask
