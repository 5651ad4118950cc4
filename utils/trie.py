"""Prefix tree over token-id sequences: which tokens may follow a prefix (constrained decoding)."""
from __future__ import annotations

from typing import Dict, Iterable, List


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
