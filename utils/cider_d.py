"""CIDEr-D (Vedantam et al., 2015) as scored by the coco-caption ``ciderD`` code OFA uses for SCST rewards.

Same formula as pycocoevalcap's ``Cider`` (clipped tf-idf n-gram cosines, Gaussian length penalty), but
document frequencies may also come from a cached pickle (the original's ``coco-train-words.p``:
``{"document_frequency": {ngram: count}, "ref_len": number of reference images}``) instead of the
scored references, which is what makes SCST rewards independent of the batch.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from typing import Dict, Hashable, List, Mapping, Sequence, Tuple

import numpy as np

from utils.safe_pickle import load_pickle

Ngram = Tuple[str, ...]
CORPUS = "corpus"


def ngram_counts(sentence: str, n: int = 4) -> Counter:
    """Counts of every 1..n-gram of the whitespace-split sentence."""
    words = sentence.split()
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def document_frequency(reference_sets: Sequence[Sequence[str]], n: int = 4) -> Dict[Ngram, float]:
    """For each n-gram, the number of reference sets (images) in which any reference contains it."""
    frequency: Dict[Ngram, float] = Counter()
    for references in reference_sets:
        frequency.update({ngram for ref in references for ngram in ngram_counts(ref, n)})
    return dict(frequency)


def load_cached_tokens(path: str) -> Tuple[Dict[Ngram, float], float]:
    """Document frequencies and reference count from a ``coco-train-words.p``-style pickle."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"CIDEr-D document frequencies not found: {path} (expected a pickle like the original's "
            f"coco-train-words.p, or pass '{CORPUS}' to compute them from the references)"
        )
    # latin1: the published files were written by Python 2's cPickle
    cached = load_pickle(path, "CIDEr-D cached tokens", encoding="latin1")
    if not isinstance(cached, Mapping) or not {"document_frequency", "ref_len"} <= set(cached):
        raise ValueError(f"{path}: expected a dict with 'document_frequency' and 'ref_len' entries")
    return dict(cached["document_frequency"]), float(cached["ref_len"])


class CiderD:
    """CIDEr-D scorer; ``df`` is a cached-tokens pickle path or ``"corpus"`` (frequencies from the references)."""

    def __init__(self, n: int = 4, sigma: float = 6.0, df: str = CORPUS):
        self.n = n
        self.sigma = sigma
        self.df_mode = df
        if df != CORPUS:
            self.document_frequency, ref_len = load_cached_tokens(df)
            self.log_ref_len = math.log(ref_len)

    def compute_score(self, gts: Mapping[Hashable, List[str]], res: List[dict]) -> Tuple[float, np.ndarray]:
        """coco-caption interface: ``res`` is ``[{"image_id": k, "caption": [hypothesis]}]``, ``gts[k]`` the references."""
        candidates, reference_sets = [], []
        for entry in res:
            hypothesis, references = entry["caption"], gts[entry["image_id"]]
            if not isinstance(hypothesis, list) or len(hypothesis) != 1:
                raise ValueError(f"image {entry['image_id']!r}: expected one hypothesis in a list, got {hypothesis!r}")
            if not references:
                raise ValueError(f"image {entry['image_id']!r}: no reference captions")
            candidates.append(hypothesis[0])
            reference_sets.append(references)
        scores = self.score(candidates, reference_sets)
        return float(np.mean(scores)), scores

    def score(self, candidates: Sequence[str], reference_sets: Sequence[Sequence[str]]) -> np.ndarray:
        """CIDEr-D of each candidate against its own reference set (float64 array)."""
        if self.df_mode == CORPUS:
            # every (candidate, references) pair counts as one document, repeated references included
            frequency = document_frequency(reference_sets, self.n)
            log_ref_len = math.log(float(len(reference_sets)))
        else:
            frequency, log_ref_len = self.document_frequency, self.log_ref_len
        scores = np.zeros(len(candidates), dtype=np.float64)
        for i, (candidate, references) in enumerate(zip(candidates, reference_sets)):
            hyp = self._tfidf(ngram_counts(candidate, self.n), frequency, log_ref_len)
            total = np.zeros(self.n)
            for reference in references:
                total += self._similarity(hyp, self._tfidf(ngram_counts(reference, self.n), frequency, log_ref_len))
            scores[i] = np.mean(total) / len(references) * 10.0
        return scores

    def _tfidf(self, counts: Counter, frequency: Mapping[Ngram, float], log_ref_len: float):
        """Per-order tf-idf vectors, their norms, and the sentence length."""
        vectors: List[Dict[Ngram, float]] = [{} for _ in range(self.n)]
        for ngram, term_freq in counts.items():
            idf = log_ref_len - math.log(max(1.0, frequency.get(ngram, 0.0)))
            vectors[len(ngram) - 1][ngram] = float(term_freq) * idf
        norms = [math.sqrt(sum(w * w for w in vec.values())) for vec in vectors]
        # the reference scorer measures length as the number of bigrams; kept for identical scores
        length = sum(counts[g] for g in vectors[1]) if self.n > 1 else 0
        return vectors, norms, length

    def _similarity(self, hyp, ref) -> np.ndarray:
        """Per-order clipped cosine similarity times the Gaussian length penalty."""
        (hyp_vecs, hyp_norms, hyp_len), (ref_vecs, ref_norms, ref_len) = hyp, ref
        penalty = math.exp(-float(hyp_len - ref_len) ** 2 / (2 * self.sigma ** 2))
        similarity = np.zeros(self.n)
        for k in range(self.n):
            value = sum(min(w, ref_vecs[k].get(g, 0.0)) * ref_vecs[k].get(g, 0.0) for g, w in hyp_vecs[k].items())
            if hyp_norms[k] != 0 and ref_norms[k] != 0:
                value /= hyp_norms[k] * ref_norms[k]
            similarity[k] = value * penalty
        return similarity
