"""The OFA vocabulary: GPT-2 BPE ids, then ``<mask>``, image codes and coordinate bins, and its layout."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
from fairseq.data import Dictionary

BPE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "utils", "BPE")


def load_ofa_dictionary(bpe_dir: str | None = None, code_dict_size: int = 8192, num_bins: int = 1000) -> Dictionary:
    """Load ``dict.txt`` and append ``<mask>``, ``<code_i>`` and ``<bin_i>`` as the original does."""
    path = os.path.join(bpe_dir or BPE_DIR, "dict.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BPE dictionary not found: {path} (set --bpe-dir to a folder with dict.txt)")
    dictionary = Dictionary.load(path)
    dictionary.add_symbol("<mask>")
    for i in range(code_dict_size):
        dictionary.add_symbol(f"<code_{i}>")
    for i in range(num_bins):
        dictionary.add_symbol(f"<bin_{i}>")
    return dictionary


def _symbol_block(dictionary: Dictionary, prefix: str) -> range:
    """Ids of the contiguous block ``<prefix0>``, ``<prefix1>``... (empty when the dictionary has none)."""
    start = dictionary.indices.get(f"<{prefix}0>")
    if start is None:
        return range(len(dictionary), len(dictionary))
    end = start
    while end < len(dictionary) and dictionary[end] == f"<{prefix}{end - start}>":
        end += 1
    return range(start, end)


@dataclass(frozen=True)
class VocabLayout:
    """Where OFA's symbol groups sit in the dictionary, computed once from it (``task.vocab``).

    ``specials`` are bos/pad/eos/unk (never masked by a constraint range), ``text`` the BPE words and
    ``<mask>`` before the image codes, ``codes`` the ``<code_i>`` and ``bins`` the ``<bin_i>`` ids.
    """

    bos: int
    pad: int
    eos: int
    unk: int
    mask: Optional[int]
    specials: range
    text: range
    codes: range
    bins: range
    size: int

    @classmethod
    def of(cls, dictionary: Dictionary, code_dict_size: int | None = None, num_bins: int | None = None) -> VocabLayout:
        """The layout of ``dictionary``; with sizes given, check that it holds that many codes and bins."""
        codes, bins = _symbol_block(dictionary, "code_"), _symbol_block(dictionary, "bin_")
        for name, block, size in (("code_dict_size", codes, code_dict_size), ("num_bins", bins, num_bins)):
            if size is not None and len(block) != size:
                raise ValueError(f"--{name.replace('_', '-')} {size}: the dictionary holds {len(block)} such symbols")
        mask = dictionary.indices.get("<mask>")
        specials = range(dictionary.nspecial)
        text_end = codes.start if len(codes) else (bins.start if len(bins) else len(dictionary))
        return cls(bos=dictionary.bos(), pad=dictionary.pad(), eos=dictionary.eos(), unk=dictionary.unk(),
                   mask=mask, specials=specials, text=range(specials.stop, text_end), codes=codes, bins=bins,
                   size=len(dictionary))

    @property
    def num_bins(self) -> int:
        return len(self.bins)

    @property
    def code_dict_size(self) -> int:
        return len(self.codes)

    def parse_range(self, text: Optional[str], flag: str = "--constraint-range") -> Optional[range]:
        """``"start,end"`` (vocabulary ids, end exclusive) -> ``range(start, end)``; None stays None."""
        if text is None:
            return None
        try:
            start, end = (int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"{flag}: expected 'start,end' (two integers), got {text!r}") from None
        if not self.specials.stop <= start < end <= self.size:
            raise ValueError(f"{flag}: need {self.specials.stop} <= start < end <= {self.size} "
                             f"(the vocabulary size), got {text!r}")
        return range(start, end)

    def constraint_tokens(self, text: Optional[str]) -> Optional[torch.Tensor]:
        """Ids a ``--constraint-range`` allows: the special symbols, then ``start..end-1`` (None without one)."""
        allowed = self.parse_range(text)
        if allowed is None:
            return None
        return torch.cat([torch.arange(self.specials.start, self.specials.stop), torch.arange(allowed.start, allowed.stop)])
