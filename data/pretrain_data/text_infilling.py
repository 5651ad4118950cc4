"""BART-style text infilling as OFA pretrains with it: whole-word spans of Poisson length become ``<mask>``."""
from __future__ import annotations

import math

import torch

MASK_LENGTHS = ("subword", "word", "span-poisson")


def whole_word_start_table(bpe, dictionary) -> torch.Tensor:
    """(len(dictionary),) long: 1 where a symbol starts a word (specials, codes and bins count as starts)."""

    def starts_word(index: int) -> bool:
        if index < dictionary.nspecial:
            return True
        symbol = dictionary[index]
        if symbol.startswith("madeupword"):
            return True
        try:
            return bpe.is_beginning_of_word(symbol)
        except ValueError:  # not a BPE id: <code_i>, <bin_i>
            return True

    return torch.tensor([starts_word(i) for i in range(len(dictionary))], dtype=torch.long)


def poisson_span_lengths(poisson_lambda: float) -> torch.Tensor:
    """P(span length = k) = e^-l l^k / k! for k = 0, 1, ..., truncated where it drops below 1e-7 (at most 128)."""
    probs, term = [], math.exp(-poisson_lambda)
    for k in range(128):
        probs.append(term)
        term *= poisson_lambda / (k + 1)
        if probs[-1] < 1e-7:
            break
    return torch.tensor(probs)


class TextInfilling:
    """Noise a ``bos ... eos`` token sequence: ``mask_ratio`` of its words are masked, in spans whose lengths
    follow ``mask_length``; a span becomes 0, 1 or N ``<mask>`` (``replace_length`` 0, 1, -1), and with
    probability ``random_ratio`` a random text token instead. Zero-length spans insert a ``<mask>``.

    Draws from the ``generator`` passed with each call (the dataset seeds one per sample).
    """

    def __init__(self, dictionary, bpe, mask_ratio: float = 0.3, random_ratio: float = 0.0,
                 mask_length: str = "span-poisson", poisson_lambda: float = 3.0, replace_length: int = 1,
                 random_token_range: tuple[int, int] | None = None):
        if replace_length not in (-1, 0, 1):
            raise ValueError(f"invalid --replace-length {replace_length}: choose -1, 0 or 1")
        if mask_length not in MASK_LENGTHS:
            raise ValueError(f"invalid --mask-length {mask_length!r}: choose one of {', '.join(MASK_LENGTHS)}")
        if mask_length == "subword" and replace_length not in (0, 1):
            raise ValueError("--mask-length subword needs --replace-length 0 or 1")
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"--mask-ratio must be in [0, 1], got {mask_ratio}")
        self.mask_ratio = mask_ratio
        self.random_ratio = random_ratio
        self.replace_length = replace_length
        self.mask_idx = dictionary.index("<mask>")
        # random replacements are text tokens (the original excludes the 4 specials, image codes and bins)
        self.random_token_range = random_token_range or (dictionary.nspecial, len(dictionary))
        self.word_start_table = whole_word_start_table(bpe, dictionary) if mask_length != "subword" else None
        self.span_probs = poisson_span_lengths(poisson_lambda) if mask_length == "span-poisson" else None

    def word_starts(self, tokens: torch.Tensor) -> torch.Tensor:
        """1 at tokens that start a word, 0 elsewhere and at bos/eos."""
        if self.word_start_table is None:
            starts = torch.ones(len(tokens), dtype=torch.long)
        else:
            starts = self.word_start_table.gather(0, tokens)
        starts[0] = starts[-1] = 0
        return starts

    def _random_tokens(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(*self.random_token_range, size=(count,), generator=generator)

    def _replace(self, tokens, indices, use_random, generator) -> None:
        tokens[indices] = self.mask_idx
        tokens[indices[use_random]] = self._random_tokens(int(use_random.sum()), generator)

    def _sample_span_lengths(self, num_to_mask: int, generator: torch.Generator) -> torch.Tensor:
        """Poisson span lengths whose sum is exactly ``num_to_mask`` (the last span is cut to fit)."""

        def draw():
            return torch.multinomial(self.span_probs, num_to_mask, replacement=True, generator=generator)

        lengths = draw()
        while lengths.sum() < num_to_mask:
            lengths = torch.cat([lengths, draw()])
        cumulative = lengths.cumsum(0)
        last = int((cumulative < num_to_mask).sum())  # first span reaching the budget
        lengths[last] = num_to_mask - (cumulative[last - 1] if last > 0 else 0)
        return lengths[: last + 1]

    def __call__(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        tokens = tokens.clone()
        is_word_start = self.word_starts(tokens)
        num_to_mask = int(math.ceil(is_word_start.sum().item() * self.mask_ratio))
        if num_to_mask == 0:
            return tokens
        num_inserts = 0
        if self.span_probs is not None:
            lengths = self._sample_span_lengths(num_to_mask, generator)
            num_spans = len(lengths)
            lengths = lengths[lengths > 0]
            num_inserts = num_spans - len(lengths)
            num_to_mask = len(lengths)
            if num_to_mask == 0:
                return self.insert_masks(tokens, num_inserts / len(tokens), generator)
        else:
            lengths = torch.ones(num_to_mask, dtype=torch.long)

        word_start_positions = is_word_start.nonzero().squeeze(1)
        indices = word_start_positions[torch.randperm(len(word_start_positions), generator=generator)[:num_to_mask]]
        use_random = torch.rand(num_to_mask, generator=generator) < self.random_ratio
        keep = torch.ones(len(tokens), dtype=torch.bool)
        is_word_start[-1] = 255  # acts as a very long word so spans never run over eos
        if self.replace_length == 0:
            keep[indices] = False
        else:
            self._replace(tokens, indices, use_random, generator)

        # extend every span over the rest of its words: continuation tokens are deleted (or masked for -1)
        remaining = lengths - 1 if self.span_probs is not None else None
        while len(indices) > 0:
            if remaining is not None:
                remaining = remaining - is_word_start[indices + 1]
                unfinished = remaining >= 0
                remaining = remaining[unfinished]
            else:
                unfinished = is_word_start[indices + 1] == 0
            indices = indices[unfinished] + 1
            use_random = use_random[unfinished]
            if self.replace_length != -1:
                keep[indices] = False
            else:
                self._replace(tokens, indices, use_random, generator)

        tokens = tokens[keep]
        if num_inserts > 0:
            tokens = self.insert_masks(tokens, num_inserts / len(tokens), generator)
        return tokens

    def insert_masks(self, tokens: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Insert ``ceil(len * p)`` ``<mask>`` (a ``random_ratio`` share random tokens) between bos and eos."""
        if p == 0.0:
            return tokens
        num_tokens = len(tokens)
        n = int(math.ceil(num_tokens * p))
        positions = torch.randperm(num_tokens + n - 2, generator=generator)[:n] + 1
        inserted = torch.zeros(num_tokens + n, dtype=torch.bool)
        inserted[positions] = True
        result = torch.full((num_tokens + n,), -1, dtype=torch.long)
        num_random = int(math.ceil(n * self.random_ratio))
        result[positions[num_random:]] = self.mask_idx
        result[positions[:num_random]] = self._random_tokens(num_random, generator)
        result[~inserted] = tokens
        return result
