"""The constraint trie: insertion and next-token lookup on token-id sequences."""
import torch

from utils.trie import Trie

BOS, EOS = 0, 2


def build(*sequences):
    trie = Trie(EOS)
    for tokens in sequences:
        trie.insert([BOS] + list(tokens) + [EOS])
    return trie


def test_next_layer_follows_inserted_sequences():
    trie = build([10, 11], [10, 12, 13], [20])
    assert trie.get_next_layer([]) == [BOS]
    assert trie.get_next_layer([BOS]) == [10, 20]  # insertion order
    assert trie.get_next_layer([BOS, 10]) == [11, 12]
    assert trie.get_next_layer([BOS, 10, 12]) == [13]
    assert trie.get_next_layer([BOS, 10, 12, 13]) == [EOS]
    assert trie.get_next_layer([BOS, 20]) == [EOS]


def test_complete_sequence_has_no_continuation():
    trie = build([10, 11])
    assert trie.get_next_layer([BOS, 10, 11, EOS]) == []


def test_prefix_outside_the_trie_can_only_end():
    trie = build([10, 11])
    assert trie.get_next_layer([BOS, 11]) == [EOS]
    assert trie.get_next_layer([BOS, 10, 99, 10]) == [EOS]
    assert trie.get_next_layer([5]) == [EOS]


def test_sequence_that_is_a_prefix_of_another():
    trie = build([10], [10, 11])
    assert sorted(trie.get_next_layer([BOS, 10])) == sorted([EOS, 11])


def test_duplicates_and_tensor_tokens():
    trie = Trie(EOS)
    trie.insert(torch.tensor([BOS, 7, EOS]))
    trie.insert([BOS, 7, EOS])
    assert trie.get_next_layer(torch.tensor([BOS])) == [7]
    assert trie.get_next_layer([BOS, 7]) == [EOS]
    assert all(isinstance(t, int) for t in trie.get_next_layer(torch.tensor([BOS])))
