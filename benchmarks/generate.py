"""Captioning throughput of beam search: fp32 with incremental decoding, the model cast once to bfloat16
(``evaluate.py --bf16``/``--amp``), int8 dynamic quantization (``--quantize int8``), and fp32 recomputing the decoder each step.

All runs use the same random ``ofa_tiny``-shaped model and batch on CPU, in the same process;
every hypothesis decodes the full length (min_len = max_len) so all modes do the same steps.
The fp32 line compares the beams of a sentence sharing its encoder output (the default) with per-beam copies
of it (``EnsembleModel(share_encoder_rows=False)``, as the original), timed alternately batch by batch.

With ``--classes N``, classification instead (ImageNet: 1000): beam search constrained to a trie of N random
class names, logits only for the tokens the trie allows against the full projection then the mask.

    python benchmarks/generate.py [--batches 1 --batch-size 8 --beam 5 --max-len 16 --image-size 256]
    python benchmarks/generate.py --classes 1000 --batches 3
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import models  # noqa: E402,F401  (registers the OFA model)
from data.dictionary import load_ofa_dictionary  # noqa: E402
from models.ofa import build_ofa_model  # noqa: E402
from models.quantization import quantize_for_inference  # noqa: E402
from models.sequence_generator import EnsembleModel, SequenceGenerator  # noqa: E402
from benchmarks.allcand_vqa import answer_set  # noqa: E402
from utils.trie import Trie  # noqa: E402


def caption_batch(batch_size: int, image_size: int, seed: int) -> dict:
    """A batch shaped like the caption task's: a short prompt and one image per sample."""
    g = torch.Generator().manual_seed(seed)
    src_tokens = torch.randint(4, 50000, (batch_size, 9), generator=g)
    src_tokens[:, 0], src_tokens[:, -1] = 0, 2
    return {
        "id": torch.arange(batch_size),
        "net_input": {
            "src_tokens": src_tokens,
            "src_lengths": torch.full((batch_size,), 9),
            "patch_images": torch.randn(batch_size, 3, image_size, image_size, generator=g),
            "patch_masks": torch.ones(batch_size, dtype=torch.bool),
        },
    }


def to_bfloat16(batch: dict) -> dict:
    net_input = dict(batch["net_input"], patch_images=batch["net_input"]["patch_images"].bfloat16())
    return dict(batch, net_input=net_input)


def sentences_per_second(generator: SequenceGenerator, ensemble: EnsembleModel, batches: list) -> tuple:
    start = time.perf_counter()
    outputs = [generator.generate(ensemble, batch) for batch in batches]
    elapsed = time.perf_counter() - start
    return sum(len(out) for out in outputs) / elapsed, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ofa_tiny")
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=16, help="tokens per caption (without eos)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--no-recompute", action="store_true", help="skip the (slow) full-recompute run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--classes", type=int, default=0,
                        help="classify over a trie of this many class names instead of captioning (0: captions)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    dictionary = load_ofa_dictionary()
    model = build_ofa_model(args.arch, dictionary=dictionary, patch_image_size=args.image_size).eval()
    if args.classes:
        classify(model, dictionary, args)
        return
    generator = SequenceGenerator([model], dictionary, beam_size=args.beam, max_len_b=args.max_len,
                                  min_len=args.max_len, no_repeat_ngram_size=3)
    batches = [caption_batch(args.batch_size, args.image_size, seed) for seed in range(args.batches)]
    cached_model = EnsembleModel([model], incremental=True)
    copies_model = EnsembleModel([model], incremental=True, share_encoder_rows=False)
    recompute_model = EnsembleModel([model], incremental=False)

    generator.generate(cached_model, caption_batch(1, args.image_size, seed=99))  # warm-up
    # alternately, so that load from other processes on a shared machine hits both alike
    timings, outputs = {"shared": 0.0, "copies": 0.0}, {"shared": [], "copies": []}
    for batch in batches:
        for name, ensemble in (("shared", cached_model), ("copies", copies_model)):
            start = time.perf_counter()
            outputs[name].append(generator.generate(ensemble, batch))
            timings[name] += time.perf_counter() - start
    sentences = args.batches * args.batch_size
    cached, cached_out = sentences / timings["shared"], outputs["shared"]
    bf16_model = EnsembleModel([copy.deepcopy(model).bfloat16()], incremental=True)
    generator.generate(bf16_model, to_bfloat16(caption_batch(1, args.image_size, seed=99)))
    bf16, bf16_out = sentences_per_second(generator, bf16_model, [to_bfloat16(batch) for batch in batches])
    int8_model = EnsembleModel([quantize_for_inference(copy.deepcopy(model), "int8")], incremental=True)
    generator.generate(int8_model, caption_batch(1, args.image_size, seed=99))
    int8, int8_out = sentences_per_second(generator, int8_model, batches)

    print(f"{args.arch}, beam {args.beam}, {args.max_len} tokens, {args.batches}x{args.batch_size} captions, "
          f"{args.image_size}px, {torch.get_num_threads()} threads")
    same_tokens, score_diff = compare_all_beams(cached_out, outputs["copies"])
    print(f"fp32, incremental decoding: {cached:8.2f} sentences/s  x{timings['copies'] / timings['shared']:.2f} of "
          f"per-beam copies of the encoder output ({sentences / timings['copies']:.2f} sentences/s; identical "
          f"hypotheses (all beams): {same_tokens}, max positional score difference {score_diff:.1e})")
    print(f"bf16 (model cast once):     {bf16:8.2f} sentences/s  x{bf16 / cached:.2f} of fp32, "
          f"{same_fraction(cached_out, bf16_out):.0%} of the best hypotheses identical to fp32's")
    print(f"int8 (--quantize int8):     {int8:8.2f} sentences/s  x{int8 / cached:.2f} of fp32, "
          f"{same_fraction(cached_out, int8_out):.0%} of the best hypotheses identical to fp32's")
    if not args.no_recompute:
        recompute, recompute_out = sentences_per_second(generator, recompute_model, batches)
        print(f"fp32, full recompute:       {recompute:8.2f} sentences/s  (incremental is x{cached / recompute:.2f}, "
              f"identical hypotheses: {same_fraction(cached_out, recompute_out) == 1})")


def classify(model, dictionary, args) -> None:
    """Trie-constrained beam search: logits only for the allowed tokens against the full projection."""
    trie = Trie(dictionary.eos())
    for name in answer_set(args.classes, seed=1):
        trie.insert([dictionary.bos()] + name.tolist() + [dictionary.eos()])
    generator = SequenceGenerator([model], dictionary, beam_size=args.beam, max_len_b=args.max_len,
                                  constraint_trie=trie)
    batches = [caption_batch(args.batch_size, args.image_size, seed) for seed in range(args.batches)]
    restricted_model = EnsembleModel([model])
    full_model = EnsembleModel([model], project_allowed_only=False)
    generator.generate(restricted_model, caption_batch(1, args.image_size, seed=99))  # warm-up
    # interleaved, so that load from other processes on a shared machine hits both alike
    timings = {"restricted": 0.0, "full": 0.0, "encoder": 0.0}
    outputs = {"restricted": [], "full": []}
    for batch in batches:
        for name, ensemble in (("restricted", restricted_model), ("full", full_model)):
            start = time.perf_counter()
            outputs[name].append(generator.generate(ensemble, batch))
            timings[name] += time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            restricted_model.forward_encoder(batch["net_input"])
        timings["encoder"] += time.perf_counter() - start
    sentences = args.batches * args.batch_size
    restricted, full, encoder = timings["restricted"], timings["full"], timings["encoder"]
    same_tokens, score_diff = compare_all_beams(outputs["restricted"], outputs["full"])
    print(f"{args.arch}, beam {args.beam}, trie of {args.classes} class names, {args.batches}x{args.batch_size} "
          f"images, {args.image_size}px, {torch.get_num_threads()} threads")
    print(f"full projection, then mask:     {sentences / full:8.2f} sentences/s")
    print(f"logits for allowed tokens only: {sentences / restricted:8.2f} sentences/s  x{full / restricted:.2f}; "
          f"decoding without the image encoder x{(full - encoder) / (restricted - encoder):.2f}")
    print(f"identical hypotheses (all beams): {same_tokens}, max positional score difference {score_diff:.1e}")


def compare_all_beams(outputs_a: list, outputs_b: list) -> tuple:
    """Whether every hypothesis of every sentence has the same tokens in both runs, and the largest difference of
    their positional scores."""
    pairs = [(a, b) for out_a, out_b in zip(outputs_a, outputs_b)
             for sent_a, sent_b in zip(out_a, out_b) for a, b in zip(sent_a, sent_b)]
    same_tokens = all(torch.equal(a["tokens"], b["tokens"]) for a, b in pairs)
    return same_tokens, max(float((a["positional_scores"] - b["positional_scores"]).abs().max()) for a, b in pairs)


def same_fraction(outputs_a: list, outputs_b: list) -> float:
    """Share of sentences whose best hypothesis has the same tokens in both runs."""
    pairs = [(a[0]["tokens"].tolist(), b[0]["tokens"].tolist())
             for out_a, out_b in zip(outputs_a, outputs_b) for a, b in zip(out_a, out_b)]
    return sum(a == b for a, b in pairs) / len(pairs)


if __name__ == "__main__":
    main()
