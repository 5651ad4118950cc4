"""Text infilling noise: whole-word spans with Poisson lengths, the replace-length and random-token options."""
import math

import pytest
import torch

from data.dictionary import load_ofa_dictionary
from data.pretrain_data.text_infilling import TextInfilling, poisson_span_lengths, whole_word_start_table

TEXT = " the quick brown fox jumps over the lazy dog while xylophonists and enthusiastic spectators keep cheering"


@pytest.fixture(scope="module")
def vocab():
    from fairseq.data.encoders.gpt2_bpe import GPT2BPE, GPT2BPEConfig

    from data.dictionary import BPE_DIR

    dictionary = load_ofa_dictionary()
    bpe = GPT2BPE(GPT2BPEConfig(gpt2_encoder_json=f"{BPE_DIR}/encoder.json", gpt2_vocab_bpe=f"{BPE_DIR}/vocab.bpe"))
    tokens = dictionary.encode_line(bpe.encode(TEXT), add_if_not_exist=False, append_eos=False).long()
    tokens = torch.cat([torch.tensor([dictionary.bos()]), tokens, torch.tensor([dictionary.eos()])])
    return dictionary, bpe, tokens, whole_word_start_table(bpe, dictionary)


def noiser(vocab, **options):
    dictionary, bpe, _, table = vocab
    infilling = TextInfilling(dictionary, bpe, random_token_range=(4, len(dictionary) - 8192 - 1000), **options)
    assert infilling.word_start_table is None or torch.equal(infilling.word_start_table, table)
    return infilling


def words(tokens, table, mask=None):
    """Split bos/eos-free tokens into whole words (lists of ids); a ``mask`` token is a word of its own."""
    out = []
    for t in tokens.tolist():
        if table[t] or not out or t == mask or out[-1] == [mask]:
            out.append([t])
        else:
            out[-1].append(t)
    return out


def test_word_start_table(vocab):
    dictionary, bpe, tokens, table = vocab
    assert len(table) == len(dictionary) == 59457
    assert table[: dictionary.nspecial].tolist() == [1, 1, 1, 1]
    assert table[dictionary.index("<code_5>")] == 1 and table[dictionary.index("<bin_5>")] == 1
    assert table[dictionary.index("<mask>")] == 0
    # " xylophonists" is several BPE pieces: only the first starts a word
    pieces = dictionary.encode_line(bpe.encode(" xylophonists"), add_if_not_exist=False, append_eos=False).long()
    assert len(pieces) > 1 and table[pieces].tolist() == [1] + [0] * (len(pieces) - 1)


def test_whole_words_each_become_one_mask(vocab):
    dictionary, _, tokens, table = vocab
    mask = dictionary.index("<mask>")
    num_words = len(words(tokens[1:-1], table))
    out = noiser(vocab, mask_ratio=1.0, mask_length="word", replace_length=1)(tokens)
    assert out.tolist() == [0] + [mask] * num_words + [2]
    out = noiser(vocab, mask_ratio=1.0, mask_length="subword", replace_length=0)(tokens)
    assert out.tolist() == [0, 2]
    # replace-length -1: every token of a masked word becomes <mask>, the length is kept
    torch.manual_seed(0)
    out = noiser(vocab, mask_ratio=0.5, mask_length="word", replace_length=-1)(tokens)
    assert len(out) == len(tokens)
    kept = out != mask
    assert torch.equal(out[kept], tokens[kept])
    n_masked_words = sum(1 for w_start, t in enumerate(tokens[1:-1].tolist()) if table[t] and out[w_start + 1] == mask)
    assert n_masked_words == math.ceil(0.5 * len(words(tokens[1:-1], table)))
    for i in range(1, len(tokens) - 1):  # a masked word is masked whole
        if out[i] == mask and not table[tokens[i + 1]] and i + 1 < len(tokens) - 1:
            assert out[i + 1] == mask


def test_random_ratio_replaces_masks_with_text_tokens(vocab):
    dictionary, _, tokens, table = vocab
    torch.manual_seed(0)
    out = noiser(vocab, mask_ratio=1.0, mask_length="word", replace_length=1, random_ratio=1.0)(tokens)
    assert len(out) == len(words(tokens[1:-1], table)) + 2
    assert dictionary.index("<mask>") not in out.tolist()
    assert all(4 <= t < len(dictionary) - 8192 - 1000 for t in out[1:-1].tolist())


def test_span_poisson_masking(vocab):
    dictionary, _, tokens, table = vocab
    mask = dictionary.index("<mask>")
    infilling = noiser(vocab, mask_ratio=0.3, mask_length="span-poisson", poisson_lambda=3.0, replace_length=1)
    original_words = words(tokens[1:-1], table)
    budget = math.ceil(0.3 * len(original_words))
    for seed in range(20):
        out = infilling(tokens, torch.Generator().manual_seed(seed))
        assert torch.equal(out, infilling(tokens, torch.Generator().manual_seed(seed)))  # a function of the seed
        assert out[0] == 0 and out[-1] == 2 and mask in out.tolist()
        # the unmasked words appear in order, whole; each <mask> stands for a (possibly empty) run of words
        kept = [w for w in words(out[1:-1], table, mask) if w != [mask]]
        it = iter(original_words)
        assert all(any(w == o for o in it) for w in kept)
        dropped = len(original_words) - len(kept)
        assert 1 <= dropped <= budget


def test_poisson_span_lengths():
    probs = poisson_span_lengths(3.0)
    assert probs[0] == pytest.approx(math.exp(-3)) and probs[3] == pytest.approx(math.exp(-3) * 27 / 6, rel=1e-5)
    assert probs[-1] < 1e-7 <= probs[-2]
    mean = (torch.arange(len(probs)) * probs).sum()
    assert mean == pytest.approx(3.0, abs=1e-4) and probs.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"replace_length": 2}, "--replace-length 2"),
    ({"mask_length": "sentence"}, "--mask-length 'sentence'"),
    ({"mask_length": "subword", "replace_length": -1}, "subword needs --replace-length 0 or 1"),
    ({"mask_ratio": 1.5}, "--mask-ratio must be in"),
])
def test_invalid_options(vocab, options, message):
    with pytest.raises(ValueError, match=message):
        noiser(vocab, **options)
