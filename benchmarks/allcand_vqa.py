"""All-candidate VQA: the trie scorer (``models/candidate_scorer.py``) against full-vocabulary scoring.

Both score the same questions against the same answer set with the same random ``ofa_tiny`` (256 px) in one
process; the old path is the original's (each (question, answer) pair decoded in full, all 59k logits per
position, masked to the trie, ``--valid-batch-size`` answers per chunk). Prints questions/s of each, the ratio,
whether the predictions are identical and the largest score difference.

    python benchmarks/allcand_vqa.py [--answers 3129 --questions 4 --valid-batch-size 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.dictionary import load_ofa_dictionary  # noqa: E402
from models.candidate_scorer import score_candidates_with_trie  # noqa: E402
from models.ofa import build_ofa_model  # noqa: E402
from tasks.evaluation import score_candidates  # noqa: E402
from utils.trie import Trie  # noqa: E402


def answer_set(count: int, seed: int) -> list[torch.Tensor]:
    """``count`` distinct answers of one to three BPE tokens, sharing first tokens as real answers do."""
    g = torch.Generator().manual_seed(seed)
    answers: dict[tuple, None] = {}
    while len(answers) < count:
        length = int(torch.randint(1, 4, (1,), generator=g))
        first = int(torch.randint(4, 1500, (1,), generator=g))
        rest = torch.randint(4, 20000, (length - 1,), generator=g).tolist()
        answers[(first, *rest)] = None
    return [torch.tensor(a) for a in answers]


def full_vocab_scores(model, encoder_out, prompts, answers, trie, chunk: int, bos: int, eos: int, pad: int):
    """The original's scores, chunk by chunk (``--valid-batch-size`` answers per chunk)."""
    vocab = model.decoder.output_projection.weight.size(0)
    masks = []
    for answer in answers:
        mask = torch.zeros(len(answer) + 1, vocab, dtype=torch.bool)
        for i in range(len(answer) + 1):
            mask[i, trie.get_next_layer([bos] + answer[:i].tolist())] = True
        masks.append(mask)
    pad_rows = lambda items, value: torch.nn.utils.rnn.pad_sequence(items, batch_first=True, padding_value=value)
    scores = []
    for start in range(0, len(answers), chunk):
        rows, targets, row_masks = [], [], []
        for prompt in prompts:
            prompt_mask = torch.zeros(len(prompt) - 1, vocab, dtype=torch.bool)
            for answer, mask in zip(answers[start:start + chunk], masks[start:start + chunk]):
                rows.append(torch.cat([prompt, answer]))
                targets.append(torch.cat([prompt[1:], answer, torch.tensor([eos])]))
                row_masks.append(torch.cat([prompt_mask, mask]))
        scores.append(score_candidates(model, encoder_out, pad_rows(rows, pad), pad_rows(targets, pad),
                                       pad_rows(row_masks, True), num_candidates=len(rows) // len(prompts), pad=pad))
    return torch.cat(scores, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=3129)
    parser.add_argument("--questions", type=int, default=4, help="one batch of this many questions")
    parser.add_argument("--valid-batch-size", type=int, default=20, help="answers per chunk of the old path")
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()

    torch.manual_seed(0)
    dictionary = load_ofa_dictionary()
    bos, eos, pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
    model = build_ofa_model("ofa_tiny", dictionary=dictionary, patch_image_size=args.image_size).eval()
    answers = answer_set(args.answers, seed=1)
    trie = Trie(eos)
    for answer in answers:
        trie.insert([bos] + answer.tolist() + [eos])
    g = torch.Generator().manual_seed(2)
    b = args.questions
    prompts = [torch.cat([torch.tensor([bos]), torch.randint(4, 20000, (int(n),), generator=g)])
               for n in torch.randint(6, 14, (b,), generator=g)]  # "what color is the ..." question prompts
    src_tokens = torch.randint(4, 20000, (b, 12), generator=g)
    with torch.no_grad():
        encoder_out = model.encoder(src_tokens, patch_images=torch.randn(b, 3, args.image_size, args.image_size,
                                                                         generator=g),
                                    patch_masks=torch.ones(b, dtype=torch.bool))
        start = time.perf_counter()
        new = score_candidates_with_trie(model, encoder_out, prompts, answers, trie)
        new_time = time.perf_counter() - start
        start = time.perf_counter()
        old = full_vocab_scores(model, encoder_out, prompts, answers, trie, args.valid_batch_size, bos, eos, pad)
        old_time = time.perf_counter() - start

    print(f"ofa_tiny {args.image_size}px, {b} questions x {len(answers)} answers, {torch.get_num_threads()} threads "
          f"(decoder only: the encoder pass is shared by both)")
    print(f"full-vocabulary scoring: {b / old_time:8.3f} questions/s ({old_time:.1f} s)")
    print(f"trie scorer:             {b / new_time:8.3f} questions/s ({new_time:.1f} s)")
    print(f"speed-up x{old_time / new_time:.1f}; identical predictions: "
          f"{torch.equal(new.argmax(1), old.argmax(1))}; max score difference {(new - old).abs().max():.2e}")


if __name__ == "__main__":
    main()
