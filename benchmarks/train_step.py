"""Speed and memory of one training update (forward, backward, Adam) of ``ofa_tiny`` and ``ofa_base`` on CPU.

    python benchmarks/train_step.py                       # both archs, 256px, batch 2, 3 timed updates
    python benchmarks/train_step.py --archs ofa_tiny --batch-size 8 --modes fp32,amp,checkpoint-activations
    python benchmarks/train_step.py --archs ofa_tiny --batch-size 8 --against main --rounds 3

Each arch and precision mode runs in its own process so its peak resident memory is its own; each mode is
reported next to fp32 of the same arch (time and peak-memory ratios), and the last line gives base/tiny ratios.
Modes: ``fp32``, ``amp`` (bfloat16 autocast on CPU), ``checkpoint-activations``, ``amp+checkpoint-activations``.
``--against REV`` also measures the code of git revision REV (its own copy of this script), alternating with this
tree ``--rounds`` times, and reports each mode's speed as a ratio to REV's (best round of each, so that load from
other processes on a shared machine hits both alike).
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
from typing import Optional

REPO = Path(__file__).resolve().parents[1]


MODE_FLAGS = {"fp32": [], "amp": ["--amp"], "checkpoint-activations": ["--checkpoint-activations"],
              "amp+checkpoint-activations": ["--amp", "--checkpoint-activations"]}


def caption_trainer(folder: str, arch: str, image_size: int, batch_size: int, *flags: str, lr: float = 1e-5):
    """A CPU Trainer of ``arch`` on the tiny caption set (written to ``folder`` at ``image_size`` px), seed 1."""
    sys.path.insert(0, str(REPO))
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from dataset.make_tiny_dataset import make_tiny_dataset
    from trainer import Trainer
    from tasks.loading import register_ofa_components

    register_ofa_components()
    files = make_tiny_dataset(folder, seed=0, tasks=["caption"], image_size=image_size)["caption"]
    args = options.parse_args_and_arch(options.get_training_parser(), [
        f"{files['train']},{files['valid']}", "--task", "caption", "--arch", arch, "--selected-cols", "0,4,2",
        "--patch-image-size", str(image_size), "--max-src-length", "80", "--max-tgt-length", "20",
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--lr", str(lr), "--clip-norm", "1.0",
        "--batch-size", str(batch_size), "--cpu", "--num-workers", "0", "--seed", "1", *flags,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return Trainer(cfg, task, model, task.build_criterion(cfg.criterion))


def measure(arch: str, image_size: int, batch_size: int, steps: int, threads: int, mode: str = "fp32") -> dict:
    """Updates/s of the caption task's train step and the process's peak RSS (GiB)."""
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        trainer = caption_trainer(folder, arch, image_size, batch_size, *MODE_FLAGS[mode])
        model = trainer.model
        batches = trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)
        trainer.train_step([next(batches)])  # warm-up: allocator, optimizer state
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step([next(batches)])
        elapsed = time.perf_counter() - start
    return {
        "arch": arch,
        "mode": mode,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "updates_per_s": round(steps / elapsed, 4),
        "s_per_update": round(elapsed / steps, 3),
        "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="ofa_tiny,ofa_base")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch_threads_default())
    parser.add_argument("--modes", default="fp32", help=f"comma-separated, from {', '.join(MODE_FLAGS)}")
    parser.add_argument("--against", metavar="REV", help="also measure git revision REV and report speed ratios")
    parser.add_argument("--rounds", type=int, default=1, help="with --against: alternating runs of each tree")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # child process: one arch
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.archs, args.image_size, args.batch_size, args.steps, args.threads, args.modes)))
        return
    modes = args.modes.split(",")
    if "fp32" not in modes:
        modes.insert(0, "fp32")  # the baseline of the ratios

    print(f"config: caption train step on CPU, {args.threads} threads, patch image {args.image_size}px, "
          f"batch {args.batch_size}, {args.steps} timed updates after 1 warm-up, Adam, label-smoothed CE")
    with tempfile.TemporaryDirectory() as other_tree:
        if args.against:
            export_revision(args.against, other_tree)
        results = {}
        for arch in args.archs.split(","):
            for mode in modes:
                result, other = None, None
                for _ in range(args.rounds if args.against else 1):
                    if args.against:
                        other = best_of(other, run_child(Path(other_tree) / "benchmarks" / "train_step.py", arch,
                                                         mode, args))
                    result = best_of(result, run_child(Path(__file__), arch, mode, args))
                base = results.setdefault(arch, result)  # fp32 runs first
                print(" ".join(f"{k}={v}" for k, v in result.items()),
                      f"| vs fp32: speed x{base['s_per_update'] / result['s_per_update']:.2f}, "
                      f"peak RSS x{result['peak_rss_GiB'] / base['peak_rss_GiB']:.2f}")
                if other is not None:
                    print(f"  {args.against}: s_per_update={other['s_per_update']} "
                          f"peak_rss_GiB={other['peak_rss_GiB']} | this tree: speed "
                          f"x{other['s_per_update'] / result['s_per_update']:.2f}, "
                          f"peak RSS x{result['peak_rss_GiB'] / other['peak_rss_GiB']:.2f}")
    if {"ofa_tiny", "ofa_base"} <= results.keys():
        tiny, base = results["ofa_tiny"], results["ofa_base"]
        print(f"ofa_base/ofa_tiny: time per update x{base['s_per_update'] / tiny['s_per_update']:.2f}, "
              f"peak RSS x{base['peak_rss_GiB'] / tiny['peak_rss_GiB']:.2f}, "
              f"params x{base['params_M'] / tiny['params_M']:.2f}")


def export_revision(revision: str, folder: str) -> None:
    """The files of git revision ``revision`` of this repository, written to ``folder``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"--against {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)


def run_child(script: Path, arch: str, mode: str, args: argparse.Namespace) -> dict:
    """One arch and mode measured by ``script`` (this file, or its copy in another revision) in a new process."""
    child = subprocess.run(
        [sys.executable, str(script), "--single", "--archs", arch, "--image-size", str(args.image_size),
         "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--threads", str(args.threads),
         "--modes", mode],
        capture_output=True, text=True,
        env={**os.environ, "LOGLEVEL": "WARNING", "PYTHONPATH": str(script.parents[1])})
    if child.returncode != 0:
        sys.exit(f"{script.parents[1]}: {arch} {mode} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def best_of(best: Optional[dict], result: dict, key: str = "s_per_update") -> dict:
    """The faster of two measurements by their time ``key`` (the first when ``best`` is None)."""
    return result if best is None or result[key] < best[key] else best


def torch_threads_default() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
