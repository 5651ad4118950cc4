"""The sequence generator: parity with the original OFA beams, fairseq's beam search, and OFA's decoding rules.

Hand-computed cases use a bigram model (next-token probabilities depend only on the previous
token, given as a table) built on fairseq's real encoder/decoder classes; search invariants use
a tiny random fairseq Transformer and a tiny random OFA model.
"""
import argparse
import json
import math

import pytest
import torch
import torch.nn as nn
from fairseq import search
from fairseq.data import Dictionary
from fairseq.models import (FairseqEncoder, FairseqEncoderDecoderModel, FairseqIncrementalDecoder,
                            FairseqLanguageModel)
from fairseq.models.transformer import TransformerModel, base_architecture
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.sequence_generator import SequenceGenerator as FairseqSequenceGenerator

import models  # noqa: F401  (registers the OFA model with fairseq)
from models.ofa import build_ofa_model
from models.sequence_generator import EnsembleModel, RepeatNGramBlocker, SequenceGenerator
from utils.trie import Trie

BOS, PAD, EOS, UNK = 0, 1, 2, 3
A, B, C, D, E, F, G, H = range(4, 12)  # the bigram dictionary's words


# ----------------------------------------------------------------------------- models


def word_dictionary(num_words=8):
    dictionary = Dictionary()
    for i in range(num_words):
        dictionary.add_symbol(f"w{i}")
    return dictionary


class SourceEncoder(FairseqEncoder):
    """Encoder output is an embedding of the source; the bigram decoder ignores it."""

    def __init__(self, dictionary):
        super().__init__(dictionary)
        self.embed = nn.Embedding(len(dictionary), 2)

    def forward(self, src_tokens, src_lengths=None):
        return {"encoder_out": [self.embed(src_tokens).transpose(0, 1)],
                "encoder_padding_mask": [src_tokens.eq(PAD)]}

    def reorder_encoder_out(self, encoder_out, new_order):
        return {"encoder_out": [encoder_out["encoder_out"][0].index_select(1, new_order)],
                "encoder_padding_mask": [encoder_out["encoder_padding_mask"][0].index_select(0, new_order)]}


class BigramDecoder(FairseqIncrementalDecoder):
    """Logits of the next token are ``log_probs[previous token]`` (stateless, so trivially incremental)."""

    def __init__(self, dictionary, log_probs):
        super().__init__(dictionary)
        self.log_probs = nn.Parameter(log_probs)

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, **unused):
        if incremental_state is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        return self.log_probs[prev_output_tokens], {"attn": [None]}

    def reorder_incremental_state(self, incremental_state, new_order):
        pass


class BigramModel(FairseqEncoderDecoderModel):
    pass


def bigram_model(dictionary, rows):
    """``rows[prev] = {token: prob}``; the rest of a row's mass is spread evenly over the other tokens."""
    vocab = len(dictionary)
    table = torch.empty(vocab, vocab)
    for prev in range(vocab):
        given = rows.get(prev, {})
        rest = (1.0 - sum(given.values())) / (vocab - len(given))
        table[prev] = torch.tensor([given.get(t, rest) for t in range(vocab)])
    return BigramModel(SourceEncoder(dictionary), BigramDecoder(dictionary, table.log())).eval()


def source_sample(bsz=1, src_len=4):
    src = torch.full((bsz, src_len), A)
    src[:, 0], src[:, -1] = BOS, EOS
    return {"id": torch.arange(bsz), "net_input": {"src_tokens": src, "src_lengths": torch.full((bsz,), src_len)}}


def tiny_transformer(dictionary, seed=0):
    torch.manual_seed(seed)
    args = argparse.Namespace(encoder_embed_dim=16, decoder_embed_dim=16, encoder_ffn_embed_dim=32,
                              decoder_ffn_embed_dim=32, encoder_layers=1, decoder_layers=2,
                              encoder_attention_heads=2, decoder_attention_heads=2, share_all_embeddings=True)
    base_architecture(args)
    task = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return TransformerModel.build_model(args, task).eval()


def transformer_sample():
    src = torch.tensor([[BOS, 5, 6, 7, 8, 9, EOS], [BOS, 9, 10, EOS, PAD, PAD, PAD], [BOS, 4, 4, 11, 12, EOS, PAD]])
    return {"id": torch.arange(3), "net_input": {"src_tokens": src, "src_lengths": src.ne(PAD).sum(1)}}


def assert_same_hypotheses(left, right, atol=1e-5):
    assert len(left) == len(right)
    for hypos_l, hypos_r in zip(left, right):
        assert [h["tokens"].tolist() for h in hypos_l] == [h["tokens"].tolist() for h in hypos_r]
        for h_l, h_r in zip(hypos_l, hypos_r):
            torch.testing.assert_close(h_l["score"], h_r["score"], atol=atol, rtol=0)
            torch.testing.assert_close(h_l["positional_scores"], h_r["positional_scores"], atol=atol, rtol=0)


def token_lists(hypos):
    return [h["tokens"].tolist() for h in hypos]


# ----------------------------------------------------------------------------- parity


def load_parity_model(fixture):
    """The fixture's model built the fairseq way (arch defaults + overrides), fp16 weights loaded as fp32."""
    cfg = json.loads(fixture["config"])
    overrides = {k: v for k, v in cfg.items() if k not in ("arch", "seed")}
    model = build_ofa_model(cfg["arch"], **overrides)
    state = {k: v.float() if v.is_floating_point() else v for k, v in fixture["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rp_bucket" in k for k in missing), (missing, unexpected)
    return model.eval()


@pytest.fixture(scope="module")
def parity(shared):
    fixture = torch.load(shared / "parity_small.pt", weights_only=True)
    return load_parity_model(fixture), fixture


@pytest.fixture(scope="module")
def ofa_dictionary():
    from data.dictionary import load_ofa_dictionary
    return load_ofa_dictionary()


def parity_generator(model, dictionary, generation, **overrides):
    options = dict(beam_size=generation["beam_size"], max_len_a=generation["max_len_a"],
                   max_len_b=generation["max_len_b"], min_len=generation["min_len"],
                   no_repeat_ngram_size=generation["no_repeat_ngram_size"], len_penalty=generation["len_penalty"])
    return SequenceGenerator([model], dictionary, **{**options, **overrides})


def parity_sample(fixture):
    return {"id": torch.arange(3), "net_input": dict(fixture["inputs"])}


def test_beam_search_matches_original_beams(parity, ofa_dictionary):
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"])
    hypos = generator.generate([model], parity_sample(fixture))
    expected = fixture["expected"]["beam"]
    assert [token_lists(h) for h in hypos] == [[e["tokens"].tolist() for e in exp] for exp in expected]
    for ours, theirs in zip(hypos, expected):
        for hypo, ref in zip(ours, theirs):
            torch.testing.assert_close(hypo["score"], ref["score"].float(), atol=1e-4, rtol=0)
            # every token's log-prob agrees to 2e-6 but the final eos, where p(eos) ~ 0.99: there torch's CPU
            # fp32 log_softmax over 59457 classes drops the tiny terms of its running sum (off the fp64 value by
            # up to 1.2e-4 here; the original's build by up to 2.5e-4, with other lanes), so the two differ by
            # up to 1.3e-4 while the logits agree to 5e-6
            torch.testing.assert_close(hypo["positional_scores"][:-1], ref["positional_scores"][:-1].float(),
                                       atol=1e-4, rtol=0)
            torch.testing.assert_close(hypo["positional_scores"][-1:], ref["positional_scores"][-1:].float(),
                                       atol=2e-4, rtol=0)


def test_ofa_beams_are_the_models_own_log_probs(parity, ofa_dictionary):
    """Positional scores equal the teacher-forced log-probs of each returned hypothesis."""
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"])
    sample = parity_sample(fixture)
    hypos = generator.generate([model], sample)
    with torch.no_grad():
        for i, sentence in enumerate(hypos):
            # all hypotheses of a sentence in one teacher-forced batch; padding after a hypothesis is never attended
            targets = torch.nn.utils.rnn.pad_sequence([h["tokens"] for h in sentence], batch_first=True,
                                                      padding_value=PAD)
            prev = torch.cat([torch.full((len(sentence), 1), BOS), targets[:, :-1]], dim=1)
            inputs = {k: v[i:i + 1].expand(len(sentence), *v.shape[1:])
                      for k, v in sample["net_input"].items() if k != "prev_output_tokens"}
            logits, _ = model(**inputs, prev_output_tokens=prev)
            lprobs = torch.log_softmax(logits.float(), -1).gather(2, targets.unsqueeze(2)).squeeze(2)
            for j, hypo in enumerate(sentence):
                expected = lprobs[j, : len(hypo["tokens"])]
                torch.testing.assert_close(hypo["positional_scores"], expected, atol=2e-5, rtol=0)
                assert math.isclose(float(hypo["score"]), float(expected.mean()), abs_tol=2e-5)


def test_ofa_incremental_ensemble_and_cache_free_decoding_agree(parity, ofa_dictionary):
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"], beam_size=3, max_len_b=6)
    sample = parity_sample(fixture)
    cached = generator.generate([model], sample)
    assert_same_hypotheses(cached, generator.generate(EnsembleModel([model], incremental=False), sample))
    assert_same_hypotheses(cached, generator.generate([model, model], sample))


def random_answer_trie(count, seed):
    """``count`` answers of one to four word tokens, many sharing a first token (as class names do)."""
    g = torch.Generator().manual_seed(seed)
    firsts = torch.randint(4, 50000, (max(count // 4, 1),), generator=g).tolist()
    answers = [[firsts[i % len(firsts)]] + torch.randint(4, 50000, (i % 4,), generator=g).tolist()
               for i in range(count)]
    return answer_trie(answers)


@pytest.mark.parametrize("mode", ["trie", "code_range"])
def test_constrained_logits_only_for_allowed_tokens_equal_the_full_projection(parity, ofa_dictionary, mode):
    """Projecting only the tokens a trie or range allows gives the full projection's beams (tokens equal, scores
    up to float rounding), and skips the full-vocabulary projection on every constrained step."""
    model, fixture = parity
    sample = parity_sample(fixture)
    if mode == "trie":
        # VQA-style decoder prompts of different lengths (forced, then the answer comes from the trie), and a
        # sentence without one (classification: constrained from the first step)
        prefix_tokens = torch.tensor([[30, 31, 32], [40, PAD, PAD], [PAD, PAD, PAD]])
        generator = parity_generator(model, ofa_dictionary, fixture["generation"], beam_size=5,
                                     constraint_trie=random_answer_trie(200, seed=0))
        full_steps = 3  # while the longest prompt is forced
    else:
        prefix_tokens = None
        generator = parity_generator(model, ofa_dictionary, fixture["generation"], beam_size=3, max_len_b=4,
                                     gen_code=True)
        full_steps = 0
    projections = []
    hook = model.decoder.output_projection.register_forward_hook(lambda *_: projections.append(1))
    try:
        restricted = generator.generate(EnsembleModel([model]), sample, prefix_tokens=prefix_tokens)
        assert len(projections) == full_steps
        full = generator.generate(EnsembleModel([model], project_allowed_only=False), sample,
                                  prefix_tokens=prefix_tokens)
        assert len(projections) > full_steps
    finally:
        hook.remove()
    assert max(len(h["tokens"]) for sentence in restricted for h in sentence) >= 4
    assert_same_hypotheses(restricted, full, atol=4e-6)


def test_gen_code_writes_exactly_max_len_image_codes(parity, ofa_dictionary):
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"], beam_size=2, max_len_b=6, gen_code=True,
                                 constraint_range="50265,58457")
    for sentence in generator.generate([model], parity_sample(fixture)):
        for hypo in sentence:
            tokens = hypo["tokens"].tolist()
            assert len(tokens) == 7 and tokens[-1] == EOS
            assert all(ofa_dictionary[t].startswith("<code_") for t in tokens[:-1])


def test_gen_code_defaults_to_the_code_range(parity, ofa_dictionary):
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"], beam_size=1, max_len_b=3, gen_code=True)
    assert (generator.constraint_start, generator.constraint_end) == (50265, 58457)
    for sentence in generator.generate([model], parity_sample(fixture)):
        assert all(ofa_dictionary[t].startswith("<code_") for t in sentence[0]["tokens"][:-1].tolist())


def test_gen_box_and_bin_range_write_four_bins(parity, ofa_dictionary):
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"], max_len_b=4, min_len=4, gen_box=True,
                                 constraint_range="58457,59457")
    for sentence in generator.generate([model], parity_sample(fixture)):
        for hypo in sentence:
            tokens = hypo["tokens"].tolist()
            assert len(tokens) == 5 and tokens[-1] == EOS
            assert all(ofa_dictionary[t].startswith("<bin_") for t in tokens[:-1])


def test_no_repeat_ngram_on_ofa_beams(parity, ofa_dictionary):
    """The parity beams repeat bigrams ("1028 1028 1028"); with blocking no hypothesis does."""
    model, fixture = parity
    generator = parity_generator(model, ofa_dictionary, fixture["generation"], no_repeat_ngram_size=2)
    for sentence in generator.generate([model], parity_sample(fixture)):
        for hypo in sentence:
            tokens = [BOS] + hypo["tokens"].tolist()[:-1]
            bigrams = list(zip(tokens, tokens[1:]))
            assert len(bigrams) == len(set(bigrams)), tokens


# ----------------------------------------------------------------------------- n-gram blocking


def check_blocks_repeated_ngrams(blocker):
    """Hypothesis ``bos a b c a b`` (step 5) must not continue with ``c``; ``bos a b`` may continue freely.

    Rows sit in a buffer padded to length 10, as the generator preallocates it.
    """
    tokens = torch.full((2, 10), PAD)
    tokens[0, :6] = torch.tensor([BOS, A, B, C, A, B])
    tokens[1, :6] = torch.tensor([BOS, A, B, D, E, F])
    lprobs = torch.zeros(2, 12)
    lprobs = blocker(tokens, lprobs, 2, 1, 5)
    assert lprobs[0, C] == -math.inf, "trigram 'a b c' would repeat"
    assert torch.isfinite(lprobs[0, torch.arange(12) != C]).all()
    assert torch.isfinite(lprobs[1]).all(), "nothing repeats in the second hypothesis"


def test_ngram_blocker_blocks_repeats():
    check_blocks_repeated_ngrams(RepeatNGramBlocker(3))


def test_fairseqs_cpu_ngram_fallback_fails_the_same_check():
    """Why we do not use fairseq's NGramRepeatBlock: on CPU it compares the padding at the buffer's end."""
    with pytest.raises(AssertionError, match="would repeat"):
        check_blocks_repeated_ngrams(NGramRepeatBlock(3, use_extension=False))


@pytest.mark.parametrize("size", [1, 2, 4])
def test_ngram_blocker_against_brute_force(size):
    g = torch.Generator().manual_seed(size)
    tokens = torch.randint(4, 8, (6, 12), generator=g)
    tokens[:, 0] = BOS
    step = 9
    lprobs = RepeatNGramBlocker(size)(tokens, torch.zeros(6, 10), 3, 2, step)
    for row in range(6):
        seq = tokens[row, : step + 1].tolist()
        banned = {tuple(seq[i:i + size]) for i in range(len(seq) - size + 1)}
        context = tuple(seq[len(seq) - size + 1:]) if size > 1 else ()
        expected = {ngram[-1] for ngram in banned if ngram[:-1] == context}
        assert set(torch.nonzero(lprobs[row] == -math.inf).flatten().tolist()) == expected


def test_generation_never_repeats_a_blocked_bigram():
    dictionary = word_dictionary()
    # a -> b -> a -> b ... unless blocked
    model = bigram_model(dictionary, {BOS: {A: 0.9}, A: {B: 0.8, C: 0.1, EOS: 0.05}, B: {A: 0.9}, C: {A: 0.9}})
    unblocked = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=8)
    assert unblocked.generate([model], source_sample())[0][0]["tokens"].tolist()[:4] == [A, B, A, B]
    generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=8, no_repeat_ngram_size=2)
    tokens = generator.generate([model], source_sample())[0][0]["tokens"].tolist()
    history = [BOS] + tokens[:-1]
    assert len(set(zip(history, history[1:]))) == len(history) - 1
    # a b a, then "a b" would repeat: c; c a, then "a b" and "a c" would repeat: eos
    assert tokens == [A, B, A, C, A, EOS]


# ----------------------------------------------------------------------------- hand-computed cases


ROWS = {
    BOS: {A: 0.40, E: 0.30, F: 0.10, EOS: 0.05, UNK: 0.01, BOS: 0.01},
    A: {B: 0.70, EOS: 0.20},
    B: {EOS: 0.80},
    E: {EOS: 0.50, F: 0.30, UNK: 0.02, BOS: 0.01},
    F: {EOS: 0.90},
}


@pytest.fixture
def bigram():
    dictionary = word_dictionary()
    model = bigram_model(dictionary, ROWS)
    return dictionary, model, model.decoder.log_probs.detach().exp()


def renormalized(probs, prev, token, allowed):
    return math.log(float(probs[prev, token]) / sum(float(probs[prev, t]) for t in allowed))


def test_greedy_follows_the_table(bigram):
    dictionary, model, _ = bigram
    hypo = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=5).generate([model], source_sample())[0][0]
    assert hypo["tokens"].tolist() == [A, B, EOS]
    expected = [math.log(0.40), math.log(0.70), math.log(0.80)]
    torch.testing.assert_close(hypo["positional_scores"], torch.tensor(expected), atol=1e-6, rtol=0)
    assert math.isclose(float(hypo["score"]), sum(expected) / 3, abs_tol=1e-6)


def test_constraint_range_keeps_outputs_inside_the_range(bigram):
    """Range "8,10" = {e, f}; special symbols stay allowed (except pad), logits renormalised over what is left."""
    dictionary, model, probs = bigram
    generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=5, constraint_range=f"{E},{G}")
    hypo = generator.generate([model], source_sample())[0][0]
    allowed = [BOS, PAD, EOS, UNK, E, F]
    assert hypo["tokens"].tolist() == [E, EOS]
    expected = [renormalized(probs, BOS, E, allowed), renormalized(probs, E, EOS, allowed)]
    torch.testing.assert_close(hypo["positional_scores"], torch.tensor(expected), atol=1e-5, rtol=0)


def test_constraint_range_beams_stay_in_range(bigram):
    dictionary, model, _ = bigram
    generator = SequenceGenerator([model], dictionary, beam_size=4, max_len_b=4, constraint_range=f"{E},{G}")
    for hypo in generator.generate([model], source_sample(bsz=2))[0]:
        assert all(t in (E, F) for t in hypo["tokens"][:-1].tolist())


def answer_trie(answers):
    trie = Trie(EOS)
    for answer in answers:
        trie.insert([BOS] + answer + [EOS])
    return trie


def test_trie_outputs_are_exactly_the_candidates(bigram):
    dictionary, model, probs = bigram
    answers = [[A, B], [E], [E, F]]
    generator = SequenceGenerator([model], dictionary, beam_size=3, max_len_b=5, constraint_trie=answer_trie(answers))
    hypos = generator.generate([model], source_sample())[0]
    first = [A, E]  # allowed after bos
    scores = {
        (A, B): (renormalized(probs, BOS, A, first) + 0.0 + 0.0) / 3,  # b and eos are forced
        (E,): (renormalized(probs, BOS, E, first) + renormalized(probs, E, EOS, [EOS, F])) / 2,
        (E, F): (renormalized(probs, BOS, E, first) + renormalized(probs, E, F, [EOS, F]) + 0.0) / 3,
    }
    assert sorted(tuple(h["tokens"][:-1].tolist()) for h in hypos) == sorted(scores)
    for hypo in hypos:
        assert math.isclose(float(hypo["score"]), scores[tuple(hypo["tokens"][:-1].tolist())], abs_tol=1e-5)
    assert [float(h["score"]) for h in hypos] == sorted((float(h["score"]) for h in hypos), reverse=True)


def test_zero_shot_trie_masks_log_probs_without_renormalising(bigram):
    dictionary, model, _ = bigram
    generator = SequenceGenerator([model], dictionary, beam_size=2, max_len_b=5, zero_shot=True,
                                  constraint_trie=answer_trie([[A, B], [E]]))
    hypos = generator.generate([model], source_sample())[0]
    raw = {(A, B): [math.log(0.40), math.log(0.70), math.log(0.80)], (E,): [math.log(0.30), math.log(0.50)]}
    for hypo in hypos:
        expected = raw[tuple(hypo["tokens"][:-1].tolist())]
        torch.testing.assert_close(hypo["positional_scores"], torch.tensor(expected), atol=1e-6, rtol=0)


def test_prefix_tokens_are_forced_with_their_model_scores(bigram):
    dictionary, model, _ = bigram
    prefix = torch.tensor([[E, F], [A, PAD]])  # a shorter prefix is pad-filled
    generator = SequenceGenerator([model], dictionary, beam_size=2, max_len_b=5)
    first, second = generator.generate([model], source_sample(bsz=2), prefix_tokens=prefix)
    assert first[0]["tokens"].tolist() == [E, F, EOS]
    torch.testing.assert_close(first[0]["positional_scores"],
                               torch.log(torch.tensor([0.30, 0.30, 0.90])), atol=1e-6, rtol=0)
    assert all(h["tokens"][:2].tolist() == [E, F] for h in first)
    assert all(h["tokens"][0] == A for h in second)
    assert second[0]["tokens"].tolist() == [A, B, EOS]


def test_prompt_then_trie_constrained_answer(bigram):
    """VQA with ``prompt_type prev_output``: the decoder prompt is forced, then the answer comes from the trie."""
    dictionary, model, _ = bigram
    prompt = torch.tensor([[C, D]])
    generator = SequenceGenerator([model], dictionary, beam_size=2, max_len_b=6,
                                  constraint_trie=answer_trie([[E, F], [B]]))
    hypos = generator.generate([model], source_sample(), prefix_tokens=prompt)[0]
    assert sorted(h["tokens"].tolist() for h in hypos) == sorted([[C, D, E, F, EOS], [C, D, B, EOS]])


def test_min_len_blocks_eos_until_reached():
    dictionary = word_dictionary()
    model = bigram_model(dictionary, {BOS: {EOS: 0.9, A: 0.05}, A: {EOS: 0.9, B: 0.05}, B: {EOS: 0.9, C: 0.05},
                                      C: {EOS: 0.9}})
    for min_len, expected in [(1, [A, EOS]), (2, [A, B, EOS]), (3, [A, B, C, EOS])]:
        generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=6, min_len=min_len)
        hypo = generator.generate([model], source_sample())[0][0]
        assert hypo["tokens"].tolist() == expected
        # eos is masked after normalisation: the kept tokens keep their model log-probs
        assert math.isclose(float(hypo["positional_scores"][0]), math.log(0.05), abs_tol=1e-6)


def test_max_len_ends_every_hypothesis(bigram):
    dictionary = word_dictionary()
    model = bigram_model(dictionary, {BOS: {A: 0.9}, A: {A: 0.9, EOS: 0.01}})
    for max_len_b, max_len in [(3, 0), (10, 2)]:
        generator = SequenceGenerator([model], dictionary, beam_size=2, max_len_b=max_len_b, max_len=max_len)
        for hypo in generator.generate([model], source_sample())[0]:
            assert len(hypo["tokens"]) <= min(max_len_b, max_len or max_len_b) + 1 and hypo["tokens"][-1] == EOS


def test_unnormalized_and_length_penalty_scores(bigram):
    dictionary, model, _ = bigram
    total = math.log(0.40) + math.log(0.70) + math.log(0.80)
    for options, expected in [({"normalize_scores": False}, total), ({"len_penalty": 2.0}, total / 9)]:
        generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=5, **options)
        assert math.isclose(float(generator.generate([model], source_sample())[0][0]["score"]), expected, abs_tol=1e-6)


def test_bad_options_are_rejected(bigram):
    dictionary, model, _ = bigram
    with pytest.raises(ValueError, match="constraint-range"):
        SequenceGenerator([model], dictionary, constraint_range="5")
    with pytest.raises(ValueError, match="not both"):
        SequenceGenerator([model], dictionary, constraint_range="4,6", constraint_trie=Trie(EOS))
    with pytest.raises(ValueError, match="min_len"):
        SequenceGenerator([model], dictionary, min_len=5, max_len_b=3).generate([model], source_sample())
    with pytest.raises(ValueError, match="temperature"):
        SequenceGenerator([model], dictionary, temperature=0)


# ----------------------------------------------------------------------------- search invariants


@pytest.fixture(scope="module")
def transformer():
    dictionary = word_dictionary(12)
    return dictionary, tiny_transformer(dictionary)


@pytest.mark.parametrize("options", [
    dict(beam_size=3, max_len_b=10),
    dict(beam_size=4, max_len_b=7, len_penalty=0.5, min_len=3),
    dict(beam_size=2, max_len_b=6, normalize_scores=False),
])
@pytest.mark.parametrize("with_prefix", [False, True])
def test_plain_beam_search_equals_fairseqs(transformer, options, with_prefix):
    """Without OFA's options the search is fairseq's (with OFA's bos as the first decoder token)."""
    dictionary, model = transformer
    prefix = torch.tensor([[5, 6], [7, PAD], [8, 9]]) if with_prefix else None
    ours = SequenceGenerator([model], dictionary, **options).generate(
        [model], transformer_sample(), prefix_tokens=prefix)
    theirs = FairseqSequenceGenerator([model], dictionary, **options).generate(
        [model], transformer_sample(), prefix_tokens=prefix, bos_token=BOS)
    assert_same_hypotheses(ours, theirs)


def test_incremental_decoding_equals_full_recompute(transformer):
    dictionary, model = transformer
    generator = SequenceGenerator([model], dictionary, beam_size=3, max_len_b=8)
    cached = generator.generate([model], transformer_sample())
    assert_same_hypotheses(cached, generator.generate(EnsembleModel([model], incremental=False), transformer_sample()))


def test_ensemble_of_identical_models_equals_one_model(transformer):
    dictionary, model = transformer
    generator = SequenceGenerator([model], dictionary, beam_size=3, max_len_b=8)
    assert_same_hypotheses(generator.generate([model], transformer_sample()),
                           generator.generate([model, model], transformer_sample()))


def test_ensemble_averages_probabilities(transformer):
    dictionary, model = transformer
    other = tiny_transformer(dictionary, seed=1)
    ensemble = EnsembleModel([model, other], incremental=False)
    sample = transformer_sample()
    tokens = torch.tensor([[BOS, 5]] * 3)
    with torch.no_grad():
        encoder_outs = ensemble.forward_encoder(sample["net_input"])
        lprobs, attn = ensemble.forward_decoder(tokens, encoder_outs, [{}, {}])
        singles = [m.get_normalized_probs(m.decoder(tokens, encoder_out=out), log_probs=True)[:, -1]
                   for m, out in zip([model, other], encoder_outs)]
    torch.testing.assert_close(lprobs.exp(), (singles[0].exp() + singles[1].exp()) / 2, atol=1e-6, rtol=0)
    assert attn.shape == (3, 7)


def test_each_sentence_decodes_as_if_alone(transformer):
    """Finished sentences leave the batch; the others' beams and caches must follow."""
    dictionary, model = transformer
    generator = SequenceGenerator([model], dictionary, beam_size=3, max_len_b=9)
    sample = transformer_sample()
    together = generator.generate([model], sample)
    for i in range(3):
        src = sample["net_input"]["src_tokens"][i:i + 1]
        src = src[:, : int(src.ne(PAD).sum())]
        alone = generator.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src.ne(PAD).sum(1)}})
        assert_same_hypotheses([together[i]], alone)


def test_hypothesis_fields(transformer):
    dictionary, model = transformer
    hypos = SequenceGenerator([model], dictionary, beam_size=3, max_len_b=6).generate([model], transformer_sample())
    for sentence in hypos:
        assert len(sentence) == 3
        for hypo in sentence:
            assert set(hypo) == {"tokens", "score", "attention", "alignment", "positional_scores"}
            assert hypo["tokens"][-1] == EOS and len(hypo["positional_scores"]) == len(hypo["tokens"])
            assert hypo["attention"].shape == (7, len(hypo["tokens"]))


def test_sampling_with_top_1_equals_greedy(transformer):
    dictionary, model = transformer
    greedy = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=8)
    sampling = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=8,
                                 search_strategy=search.Sampling(dictionary, sampling_topk=1))
    assert_same_hypotheses(greedy.generate([model], transformer_sample()),
                           sampling.generate([model], transformer_sample()))


@pytest.mark.parametrize("options", [dict(sampling_topk=3), dict(sampling_topp=0.5)])
def test_sampling_is_seeded_and_stays_in_the_nucleus(bigram, options):
    dictionary, model, _ = bigram
    generator = SequenceGenerator([model], dictionary, beam_size=4, max_len_b=6,
                                  search_strategy=search.Sampling(dictionary, **options))
    torch.manual_seed(0)
    first = generator.generate([model], source_sample(bsz=2))
    torch.manual_seed(0)
    assert_same_hypotheses(first, generator.generate([model], source_sample(bsz=2)))
    for sentence in first:
        assert len(sentence) == 4
        for hypo in sentence:
            # after bos only a, e, f (top-3; top-p 0.5: a, e) can be drawn
            assert hypo["tokens"][0] in ((A, E, F) if "sampling_topk" in options else (A, E))


def test_temperature_flattens_the_distribution(bigram):
    dictionary, model, probs = bigram
    generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=5, temperature=2.0)
    hypo = generator.generate([model], source_sample())[0][0]
    tempered = probs[BOS].log() / 2.0
    expected = tempered[A] - torch.logsumexp(tempered, 0)
    assert math.isclose(float(hypo["positional_scores"][0]), float(expected), abs_tol=1e-6)


def test_half_precision_generation(transformer):
    dictionary, model = transformer
    half = tiny_transformer(dictionary).half()
    hypos = SequenceGenerator([half], dictionary, beam_size=2, max_len_b=6).generate([half], transformer_sample())
    for sentence in hypos:
        for hypo in sentence:
            assert hypo["tokens"][-1] == EOS and torch.isfinite(hypo["positional_scores"]).all()
            assert hypo["positional_scores"].dtype == torch.float32


def test_tasks_can_switch_trie_and_zero_shot_after_construction(bigram):
    """OFA's tasks assign ``generator.constraint_trie`` / ``generator.zero_shot`` on a built generator."""
    dictionary, model, _ = bigram
    generator = SequenceGenerator([model], dictionary, beam_size=2, max_len_b=5)
    generator.constraint_trie = answer_trie([[F]])
    # one answer for two beams: the sentence ends with the one hypothesis it can have
    assert [h["tokens"].tolist() for h in generator.generate([model], source_sample())[0]] == [[F, EOS]]
    generator.zero_shot = True
    hypo = generator.generate([model], source_sample())[0][0]
    assert hypo["tokens"].tolist() == [F, EOS] and math.isclose(float(hypo["positional_scores"][0]), math.log(0.1),
                                                                abs_tol=1e-6)


def test_language_model_fusion_adds_weighted_log_probs(bigram):
    dictionary, model, _ = bigram
    lm = FairseqLanguageModel(BigramDecoder(dictionary, model.decoder.log_probs.detach().clone())).eval()
    generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_b=5, lm_model=lm, lm_weight=0.5)
    hypo = generator.generate([model], source_sample())[0][0]
    assert hypo["tokens"].tolist() == [A, B, EOS]
    expected = 1.5 * torch.log(torch.tensor([0.40, 0.70, 0.80]))
    torch.testing.assert_close(hypo["positional_scores"], expected, atol=1e-5, rtol=0)


def box_dictionary():
    """Words w0..w3 (ids 4..7), then <bin_0>..<bin_3> (ids 8..11)."""
    dictionary = word_dictionary(4)
    for i in range(4):
        dictionary.add_symbol(f"<bin_{i}>")
    return dictionary


@pytest.mark.parametrize("beam_size", [1, 3])
def test_bins_only_keeps_a_box_writing_model_unchanged(beam_size):
    """A model that writes bins anyway decodes to the same hypotheses with the same scores (log-prob masking)."""
    dictionary = box_dictionary()
    model = bigram_model(dictionary, {BOS: {9: 0.8, 10: 0.1}, 9: {11: 0.7, 8: 0.2}, 10: {8: 0.8}, 11: {9: 0.9},
                                      8: {10: 0.8}})
    options = dict(beam_size=beam_size, min_len=4, max_len_a=0, max_len_b=4)
    plain = SequenceGenerator([model], dictionary, **options).generate([model], source_sample(bsz=2))
    boxed = SequenceGenerator([model], dictionary, bins_only=True, **options).generate([model], source_sample(bsz=2))
    for plain_hypos, boxed_hypos in zip(plain, boxed):
        assert plain_hypos[0]["tokens"].tolist() == boxed_hypos[0]["tokens"].tolist() == [9, 11, 9, 11, EOS]
        torch.testing.assert_close(plain_hypos[0]["positional_scores"], boxed_hypos[0]["positional_scores"])


def test_bins_only_never_writes_a_word():
    """A weak model preferring words writes only bins (then eos) under bins_only, without it a word."""
    dictionary = box_dictionary()
    model = bigram_model(dictionary, {prev: {A: 0.5, B: 0.3} for prev in range(len(dictionary))})
    options = dict(beam_size=2, min_len=4, max_len_a=0, max_len_b=4)
    plain = SequenceGenerator([model], dictionary, **options).generate([model], source_sample())[0][0]
    assert A in plain["tokens"].tolist()
    for hypo in SequenceGenerator([model], dictionary, bins_only=True, **options).generate([model], source_sample())[0]:
        tokens = hypo["tokens"].tolist()
        assert len(tokens) == 5 and tokens[-1] == EOS and all(8 <= t < 12 for t in tokens[:-1])
    with pytest.raises(ValueError, match="<bin_i>"):
        SequenceGenerator([model], word_dictionary(), bins_only=True)


@pytest.mark.parametrize("mode", ["captions", "prompt", "codes", "recompute"])
def test_beams_sharing_their_sentence_encoder_output_equal_copies_per_beam(parity, ofa_dictionary, mode):
    """Beams attending to one encoder output per sentence (keys/values projected once per sentence) give the
    beams of per-beam copies: same tokens (all beams), scores and alignment up to float rounding, also when
    sentences finish at different steps and leave the batch."""
    model, fixture = parity
    sample = parity_sample(fixture)
    options, prefix_tokens, incremental = {"beam_size": 4}, None, True
    if mode == "prompt":
        prefix_tokens = torch.tensor([[30, 31, 32], [40, PAD, PAD], [PAD, PAD, PAD]])
    elif mode == "codes":  # image-code positions and their cross-attention biases per row
        options.update(max_len_b=4, gen_code=True)
    elif mode == "recompute":
        incremental = False
    generator = parity_generator(model, ofa_dictionary, fixture["generation"], **options)
    key_rows = []
    hook = model.decoder.layers[0].encoder_attn.k_proj.register_forward_hook(
        lambda module, inputs, output: key_rows.append(inputs[0].size(1)))
    try:
        shared = generator.generate(EnsembleModel([model], incremental=incremental), sample,
                                    prefix_tokens=prefix_tokens)
        assert set(key_rows) <= {1, 2, 3}  # one row per remaining sentence, never per beam
        copies = generator.generate(EnsembleModel([model], incremental=incremental, share_encoder_rows=False),
                                    sample, prefix_tokens=prefix_tokens)
        assert max(key_rows) == 3 * 4
    finally:
        hook.remove()
    if mode == "captions":
        assert len({len(sentence[0]["tokens"]) for sentence in shared}) > 1  # sentences left at different steps
    assert_same_hypotheses(shared, copies, atol=2e-5)
    for sentence_shared, sentence_copies in zip(shared, copies):
        for a, b in zip(sentence_shared, sentence_copies):
            torch.testing.assert_close(a["attention"], b["attention"], atol=1e-5, rtol=0)


def test_shared_encoder_rows_need_a_decoder_that_attends_them():
    dictionary = word_dictionary()
    with pytest.raises(ValueError, match="share_encoder_rows needs decoders"):
        EnsembleModel([tiny_transformer(dictionary)], share_encoder_rows=True)
    assert not EnsembleModel([tiny_transformer(dictionary)]).share_encoder_rows
