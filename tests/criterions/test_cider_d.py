"""CIDEr-D: hand-computed scores, the cached-tokens pickle format, and the coco-caption interface."""
import math
import pickle
from collections import defaultdict

import numpy as np
import pytest

from utils.cider_d import CiderD, document_frequency, load_cached_tokens, ngram_counts


@pytest.fixture
def cached_tokens(tmp_path):
    """A ``coco-train-words.p``-style pickle: 4 reference images, 'a' in 1 of them, 'cat' in 2."""
    frequency = defaultdict(float, {("a",): 1.0, ("cat",): 2.0})
    path = tmp_path / "words.p"
    with open(path, "wb") as f:
        pickle.dump({"document_frequency": frequency, "ref_len": 4.0}, f, protocol=2)
    return str(path)


def test_ngram_counts():
    counts = ngram_counts("a cat a cat", n=2)
    assert counts == {("a",): 2, ("cat",): 2, ("a", "cat"): 2, ("cat", "a"): 1}


def test_identical_caption_scores_ten_times_the_share_of_present_orders(cached_tokens):
    # unigram and bigram cosines are 1, the empty 3- and 4-gram orders score 0
    assert CiderD(df=cached_tokens).score(["a cat"], [["a cat"]])[0] == pytest.approx(5.0)


def test_partial_match_by_hand(cached_tokens):
    # idf = ln 4 - ln max(1, df): a -> 2 ln2, cat -> ln2, dog -> 2 ln2 (unseen)
    # unigram cosine = (2 ln2)^2 / (sqrt(5) ln2 * 2 sqrt(2) ln2) = 2 / sqrt(10); bigrams differ
    score = CiderD(df=cached_tokens).score(["a cat"], [["a dog"]])[0]
    assert score == pytest.approx(10 * (2 / math.sqrt(10)) / 4)


def test_clipping_and_length_penalty_by_hand(cached_tokens):
    # hypothesis weight 2 ln2 is clipped to the reference's ln2: (ln2 * ln2) / (2 ln2 * ln2) = 0.5;
    # lengths are counted in bigrams (1 vs 0): penalty exp(-1 / (2 * 6^2))
    score = CiderD(df=cached_tokens).score(["cat cat"], [["cat"]])[0]
    assert score == pytest.approx(10 * 0.5 * math.exp(-1 / 72) / 4)


def test_scores_average_over_references(cached_tokens):
    scorer = CiderD(df=cached_tokens)
    both = scorer.score(["a cat"], [["a cat", "a dog"]])[0]
    assert both == pytest.approx((scorer.score(["a cat"], [["a cat"]])[0] + scorer.score(["a cat"], [["a dog"]])[0]) / 2)


def test_corpus_mode_takes_frequencies_from_the_references():
    # two documents: 'a' in both (idf 0), 'cat'/'dog' in one each (idf ln 2)
    assert document_frequency([["a cat"], ["a dog", "a dog"]])[("a",)] == 2
    scores = CiderD().score(["a cat", "a cat"], [["a cat"], ["a dog"]])
    assert scores[0] == pytest.approx(5.0)
    assert scores[1] == pytest.approx(0.0)


def test_coco_caption_interface(cached_tokens):
    mean, scores = CiderD(df=cached_tokens).compute_score(
        {0: ["a cat"], 1: ["a dog"]}, [{"image_id": 0, "caption": ["a cat"]}, {"image_id": 1, "caption": ["a cat"]}]
    )
    assert scores.dtype == np.float64 and scores[0] == pytest.approx(5.0) and mean == pytest.approx(scores.mean())
    with pytest.raises(ValueError, match="one hypothesis"):
        CiderD(df=cached_tokens).compute_score({0: ["a"]}, [{"image_id": 0, "caption": "a"}])


def test_bad_cached_tokens_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.p"):
        CiderD(df=str(tmp_path / "missing.p"))
    bad = tmp_path / "bad.p"
    bad.write_bytes(pickle.dumps({"ref_len": 3}))
    with pytest.raises(ValueError, match="bad.p.*document_frequency"):
        load_cached_tokens(str(bad))


def test_reads_the_reference_fixture_pickle(shared):
    frequency, ref_len = load_cached_tokens(str(shared / "e2e_caption" / "scst" / "cider_cached_tokens.p"))
    assert ref_len > 0 and frequency[("a",)] >= 1 and all(isinstance(k, tuple) for k in frequency)


def test_corpus_mode_agrees_with_pycocoevalcap_cider():
    from pycocoevalcap.cider.cider import Cider

    rng = np.random.default_rng(0)
    words = "a the cat dog sits on red sofa near two umbrellas".split()

    def sentence():
        return " ".join(rng.choice(words, size=rng.integers(1, 9)))

    gts = {i: [sentence() for _ in range(rng.integers(1, 5))] for i in range(12)}
    res = {i: [sentence()] for i in gts}
    _, expected = Cider().compute_score(gts, res)
    ours = CiderD().score([res[i][0] for i in gts], [gts[i] for i in gts])
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
