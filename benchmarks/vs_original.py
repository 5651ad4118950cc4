"""This tree side by side with the original OFA model code (OFA-Sys/OFA): train step, beam search, peak memory.

    python benchmarks/vs_original.py --original /path/to/OFA                 # ofa_tiny, 256 px, batch 8
    python benchmarks/vs_original.py --original /path/to/OFA --steps 3 --rounds 3 --threads 2

``--original DIR`` is a checkout of OFA-Sys/OFA (its ``models`` package is imported from DIR, on the fairseq
installed here). Both sides build ``ofa_tiny`` with the arch defaults over the same 59457-symbol vocabulary
(``utils/BPE/dict.txt`` plus ``<mask>``, ``<code_i>``, ``<bin_i>``; this tree's, written to a file the original
reads), hold the same random weights (this tree's
state dict, loaded into the original with ``strict=True``: the key names are the contract) and see the same
random caption-shaped batch (prompts of 16-20 tokens, one image each, targets of 12-20 tokens).

Measurements (each in its own process: both trees register a fairseq model named "ofa", and peak RSS is the
process's ``ru_maxrss``; its ratio is also given for the peak above the RSS once the model is built and loaded,
which leaves out the libraries and the weights):
- ``train-fp32``, ``train-checkpoint-activations``: forward, label-smoothed cross-entropy (0.1; fairseq's
  ``label_smoothed_nll_loss`` on both sides), backward and a ``torch.optim.Adam`` step; 1 warm-up and ``--steps``
  timed updates. ``train-amp``: this tree only, forward and loss under bfloat16 autocast (``--amp``), against the
  original's fp32. After the timed updates, one more under the profiler gives the step's peak tensor memory
  (weights, gradients, Adam state and activations held at once: what a GPU's caching allocator would hold).
- ``beam-fp32``: each side's own SequenceGenerator, beam ``--beam``, exactly ``--max-len`` tokens
  (min_len = max_len, so both sides do the same steps), no n-gram blocking (the original's fairseq blocker does
  nothing on CPU); 1 warm-up sentence, then ``--steps`` batches. ``beam-bf16``: this tree with the model cast
  once to bfloat16, against the original's fp32.
Before timing, parity: the logits of an eval forward (at target positions) and every beam hypothesis must agree,
else the script stops (timing different models would be meaningless); the fp32 train losses are compared too.
Sides alternate over ``--rounds`` (the better of each side's runs is kept, so that load from other processes on
a shared machine hits both alike); ratios are this tree's speed over the original's and its peak RSS over theirs.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_step import best_of, torch_threads_default

REPO = Path(__file__).resolve().parents[1]
ARCH = "ofa_tiny"
LOGITS_TOLERANCE = 1e-3
# measurement -> (task, variant, whether the original runs it)
MEASUREMENTS = {
    "train-fp32": ("train", "fp32", True),
    "train-checkpoint-activations": ("train", "checkpoint-activations", True),
    "train-amp": ("train", "amp", False),
    "beam-fp32": ("beam", "fp32", True),
    "beam-bf16": ("beam", "bf16", False),
}


# ---------------------------------------------------------------- child side: one tree, one measurement

def build_model(side: str, original: str, image_size: int, checkpoint_activations: bool, workdir: str):
    """``ARCH`` with the arch defaults, built by ``side``'s code ("ours" or "original"), and its dictionary."""
    if side == "ours":
        sys.path.insert(0, str(REPO))
        from data.dictionary import load_ofa_dictionary
        from models.ofa import build_ofa_model

        dictionary = load_ofa_dictionary()
        model = build_ofa_model(ARCH, dictionary=dictionary, patch_image_size=image_size,
                                checkpoint_activations=checkpoint_activations)
        return model, dictionary
    sys.path.insert(0, original)
    from fairseq.data import Dictionary
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from models.ofa import OFAModel  # the original's (registers "ofa")

    dictionary = Dictionary.load(str(Path(workdir) / "dict.txt"))  # this tree's vocabulary, see write_inputs
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)  # as fairseq's model-specific group
    OFAModel.add_args(parser)
    args = parser.parse_args([])
    args.arch = ARCH
    args.patch_image_size, args.orig_patch_image_size = image_size, 256  # task options the original model reads
    if checkpoint_activations:
        args.checkpoint_activations = True
    ARCH_CONFIG_REGISTRY[ARCH](args)
    task = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return OFAModel.build_model(args, task), dictionary


def caption_batch(batch_size: int, image_size: int, seed: int = 0) -> dict:
    """Random caption-shaped batch: right-padded prompts and targets (eos last; bos first in the decoder input)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pad, bos, eos = 1, 0, 2

    def rows(lengths) -> "torch.Tensor":
        out = torch.full((batch_size, max(lengths)), pad)
        for i, n in enumerate(lengths):
            out[i, :n] = torch.randint(4, 50000, (n,), generator=g)
        return out

    src_lengths = torch.randint(16, 21, (batch_size,), generator=g)
    src_tokens = rows(src_lengths.tolist())
    src_tokens[:, 0] = bos
    src_tokens[torch.arange(batch_size), src_lengths - 1] = eos
    tgt_lengths = torch.randint(12, 21, (batch_size,), generator=g)
    target = rows(tgt_lengths.tolist())
    target[torch.arange(batch_size), tgt_lengths - 1] = eos
    prev_output_tokens = torch.cat([torch.full((batch_size, 1), bos), target[:, :-1]], dim=1)
    prev_output_tokens[prev_output_tokens.eq(eos)] = pad
    return {
        "id": torch.arange(batch_size),
        "net_input": {
            "src_tokens": src_tokens, "src_lengths": src_lengths, "prev_output_tokens": prev_output_tokens,
            "patch_images": torch.randn(batch_size, 3, image_size, image_size, generator=g),
            "patch_masks": torch.ones(batch_size, dtype=torch.bool),
        },
        "target": target,
    }


def generation_sample(batch: dict, dtype=None) -> dict:
    """``batch`` without the decoder input (images cast to ``dtype`` when given), as generation sees it."""
    net_input = {k: v for k, v in batch["net_input"].items() if k != "prev_output_tokens"}
    if dtype is not None:
        net_input["patch_images"] = net_input["patch_images"].to(dtype)
    return {"id": batch["id"], "net_input": net_input}


def sequence_generator(model, dictionary, beam: int, max_len: int):
    """Beam search of the side on ``sys.path`` (its own SequenceGenerator) for exactly ``max_len`` tokens."""
    from models.sequence_generator import SequenceGenerator

    return SequenceGenerator([model], dictionary, beam_size=beam, max_len_a=0, max_len_b=max_len, min_len=max_len)


def hypotheses(outputs) -> list:
    """Beam search output as plain tensors (per sentence, per hypothesis: tokens, positional scores, score)."""
    return [[{"tokens": h["tokens"], "positional_scores": h["positional_scores"].float(),
              "score": h["score"].float()} for h in sentence] for sentence in outputs]


def label_smoothed_loss(model, net_output, target):
    """Label-smoothed (0.1) cross-entropy per target token, the same function for both sides."""
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    lprobs = model.get_normalized_probs(net_output, log_probs=True)
    loss, _ = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), target.view(-1), 0.1, ignore_index=1)
    return loss / target.ne(1).sum()


def measure(side: str, task: str, variant: str, args: argparse.Namespace) -> dict:
    """One measurement of ``side``; parity outputs go to ``args.workdir``."""
    import torch

    torch.set_num_threads(args.threads)
    model, dictionary = build_model(side, args.original, args.image_size, variant == "checkpoint-activations",
                                    args.workdir)
    model.load_state_dict(torch.load(Path(args.workdir) / "state.pt", weights_only=True), strict=True)
    batch = torch.load(Path(args.workdir) / "batch.pt", weights_only=True)
    net_input, target = batch["net_input"], batch["target"]
    result = {"side": side, "task": task, "variant": variant, "loaded_rss_GiB": round(current_rss_gib(), 3)}
    if task == "parity":
        model.eval()
        with torch.no_grad():
            logits = model(**net_input)[0]
        generator = sequence_generator(model, dictionary, args.beam, args.max_len)
        torch.save({"logits": logits[target.ne(1)],
                    "hypotheses": hypotheses(generator.generate([model], generation_sample(batch)))},
                   Path(args.workdir) / f"parity_{side}.pt")
        return result
    if task == "train":
        model.train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        losses = []

        def update() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "amp"):
                loss = label_smoothed_loss(model, model(**net_input), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())

        update()  # warm-up: allocator, optimizer state
        start = time.perf_counter()
        for _ in range(args.steps):
            update()
        result.update(seconds=(time.perf_counter() - start) / args.steps, losses=losses, peak_rss_GiB=peak_rss_gib())
        result["peak_tensor_GiB"] = round(peak_tensor_bytes(update, model, optimizer) / 2**30, 3)
    else:
        model.eval()
        dtype = torch.bfloat16 if variant == "bf16" else None
        if dtype is not None:
            model = model.to(dtype)  # cast once, as evaluate.py --bf16 does
        generator = sequence_generator(model, dictionary, args.beam, args.max_len)
        generator.generate([model], generation_sample(caption_batch(1, args.image_size, seed=99), dtype))  # warm-up
        sample = generation_sample(batch, dtype)
        start = time.perf_counter()
        for _ in range(args.steps):
            outputs = generator.generate([model], sample)
        seconds = (time.perf_counter() - start) / args.steps
        torch.save(hypotheses(outputs), Path(args.workdir) / f"beam_{side}_{variant}.pt")
        result.update(seconds=seconds, sentences_per_s=round(len(outputs) / seconds, 2))
    result["seconds"] = round(result["seconds"], 3)
    result.setdefault("peak_rss_GiB", peak_rss_gib())
    return result


def peak_rss_gib() -> float:
    """This process's peak resident memory so far, in GiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def peak_tensor_bytes(update, model, optimizer) -> int:
    """Peak bytes held by tensors during one more ``update`` (untimed, under the profiler): weights, gradients,
    optimizer state and activations. This is what a GPU's caching allocator must hold; unlike the RSS, it leaves
    out the libraries and the freed memory glibc keeps in its heap."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    tensors = [*model.state_dict(keep_vars=True).values(), *(p.grad for p in model.parameters()),
               *(v for state in optimizer.state.values() for v in state.values())]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if torch.is_tensor(t)}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        update()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return sum(storages.values()) + peak


def current_rss_gib() -> float:
    """This process's resident memory now (Linux), in GiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


# ---------------------------------------------------------------- parent: children, parity, ratios

def run_child(side: str, task: str, variant: str, args: argparse.Namespace) -> dict:
    """``measure`` in a new process whose Python path holds only ``side``'s tree."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", f"{side}:{task}:{variant}", "--workdir", args.workdir,
         "--original", args.original, "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
         "--steps", str(args.steps), "--threads", str(args.threads), "--beam", str(args.beam),
         "--max-len", str(args.max_len)],
        capture_output=True, text=True,
        env={**os.environ, "LOGLEVEL": "WARNING", "PYTHONPATH": str(REPO) if side == "ours" else args.original})
    if child.returncode != 0:
        sys.exit(f"{side} {task} {variant} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def check_parity(args: argparse.Namespace) -> None:
    """Stop unless both sides give the same logits and beam hypotheses for the batch."""
    import torch

    from generate import compare_all_beams

    for side in ("ours", "original"):
        run_child(side, "parity", "fp32", args)
    ours, theirs = (torch.load(Path(args.workdir) / f"parity_{side}.pt", weights_only=True)
                    for side in ("ours", "original"))
    logits_diff = float((ours["logits"] - theirs["logits"]).abs().max())
    same_tokens, score_diff = compare_all_beams([ours["hypotheses"]], [theirs["hypotheses"]])
    print(f"parity: logits max abs diff {logits_diff:.1e} (eval forward, target positions); beam hypotheses "
          f"(all {args.beam} of each sentence) identical: {same_tokens}, max positional score diff {score_diff:.1e}")
    if logits_diff > LOGITS_TOLERANCE or not same_tokens:
        sys.exit("parity failed: the two sides do not compute the same model; not timing them")


def run_key(name: str, side: str) -> tuple:
    """(side, task, variant) of measurement ``name``: the original's fp32 where it has no such variant."""
    task, variant, original_runs = MEASUREMENTS[name]
    return side, task, (variant if side == "ours" or original_runs else "fp32")


def report(name: str, ours: dict, theirs: dict) -> None:
    """One line: this tree's numbers, the original's, and the ratios."""
    unit = "s/update" if ours["task"] == "train" else "sentences/s"

    def speed(r: dict) -> str:
        return f"{r['seconds']} {unit}" if r["task"] == "train" else f"{r['sentences_per_s']} {unit}"

    against = "" if ours["variant"] == theirs["variant"] else f" (against the original's {theirs['variant']})"
    print(f"{name:29s} ours {speed(ours):>17s} {ours['peak_rss_GiB']:5.2f} GiB | original {speed(theirs):>17s} "
          f"{theirs['peak_rss_GiB']:5.2f} GiB | speed x{theirs['seconds'] / ours['seconds']:.2f}, "
          f"peak RSS x{ours['peak_rss_GiB'] / theirs['peak_rss_GiB']:.2f} (above the loaded model "
          f"x{above_loaded(ours) / above_loaded(theirs):.2f}){against}")
    if "peak_tensor_GiB" in ours:
        print(f"{'':29s} peak tensor memory: ours {ours['peak_tensor_GiB']:.2f} GiB, original "
              f"{theirs['peak_tensor_GiB']:.2f} GiB, x{ours['peak_tensor_GiB'] / theirs['peak_tensor_GiB']:.2f}")


def above_loaded(result: dict) -> float:
    """Peak RSS above the RSS once the model was built and its weights loaded (libraries and weights excluded)."""
    return max(result["peak_rss_GiB"] - result["loaded_rss_GiB"], 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", required=True, metavar="DIR", help="a checkout of OFA-Sys/OFA")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed updates / beam-search batches per run")
    parser.add_argument("--threads", type=int, default=torch_threads_default())
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=16, help="tokens per generated caption (without eos)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each side")
    parser.add_argument("--measure", default=",".join(MEASUREMENTS),
                        help=f"comma-separated, from {', '.join(MEASUREMENTS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # side:task:variant, run by run_child
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child.split(":"), args)))
        return
    args.original = str(Path(args.original).resolve())
    if not (Path(args.original) / "models" / "ofa" / "unify_transformer.py").is_file():
        sys.exit(f"--original {args.original}: no models/ofa/unify_transformer.py (expected a checkout of OFA-Sys/OFA)")
    if min(args.steps, args.rounds, args.threads, args.batch_size, args.beam, args.max_len) < 1:
        sys.exit("--steps, --rounds, --threads, --batch-size, --beam and --max-len must be at least 1")
    names = args.measure.split(",")
    unknown = sorted(set(names) - set(MEASUREMENTS))
    if unknown:
        sys.exit(f"--measure: unknown {', '.join(unknown)} (choose from {', '.join(MEASUREMENTS)})")

    print(f"config: {ARCH}, {args.image_size} px, batch {args.batch_size}, {args.threads} threads, CPU; train: "
          f"1 warm-up + {args.steps} timed Adam updates; beam {args.beam} for {args.max_len} tokens, {args.steps} "
          f"timed batches; best of {args.rounds} alternating round(s)")
    with tempfile.TemporaryDirectory() as workdir:
        args.workdir = workdir
        write_inputs(args)
        check_parity(args)
        best: dict = {}
        for round_index in range(args.rounds):
            sides = ("original", "ours") if round_index % 2 == 0 else ("ours", "original")
            done = set()
            for name in names:
                for side in sides:
                    key = run_key(name, side)
                    if key not in done:
                        done.add(key)
                        best[key] = best_of(best.get(key), run_child(*key, args), key="seconds")
        for name in names:
            report(name, best[run_key(name, "ours")], best[run_key(name, "original")])
        compare_outputs(best, args)


def write_inputs(args: argparse.Namespace) -> None:
    """The shared vocabulary, random weights (this tree's ``ARCH``, seed 1) and batch, for every child."""
    import torch

    sys.path.insert(0, str(REPO))
    from data.dictionary import load_ofa_dictionary
    from models.ofa import build_ofa_model

    torch.manual_seed(1)
    dictionary = load_ofa_dictionary()
    dictionary.save(str(Path(args.workdir) / "dict.txt"))  # the same symbols and ids for the original's side
    model = build_ofa_model(ARCH, dictionary=dictionary, patch_image_size=args.image_size)
    torch.save(model.state_dict(), Path(args.workdir) / "state.pt")
    torch.save(caption_batch(args.batch_size, args.image_size), Path(args.workdir) / "batch.pt")


def compare_outputs(best: dict, args: argparse.Namespace) -> None:
    """Train losses of both sides' fp32 runs; how many bf16 best hypotheses equal fp32's."""
    import torch

    from generate import same_fraction

    ours, theirs = best.get(("ours", "train", "fp32")), best.get(("original", "train", "fp32"))
    if ours and theirs:
        diff = max(abs(a - b) for a, b in zip(ours["losses"], theirs["losses"]))
        print(f"train losses (warm-up and timed updates), max abs diff ours vs original: {diff:.1e}")
    paths = [Path(args.workdir) / f"beam_ours_{variant}.pt" for variant in ("fp32", "bf16")]
    if all(path.is_file() for path in paths):
        fp32, bf16 = (torch.load(path, weights_only=True) for path in paths)
        print(f"beam-bf16: {same_fraction([fp32], [bf16]):.0%} of the best hypotheses identical to fp32's")


if __name__ == "__main__":
    main()
