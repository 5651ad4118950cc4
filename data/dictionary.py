"""The OFA vocabulary: GPT-2 BPE ids, then ``<mask>``, image codes and coordinate bins."""
from __future__ import annotations

import os

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
