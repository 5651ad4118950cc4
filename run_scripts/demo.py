"""The README's main command: tiny data, finetune ``ofa_tiny`` on CPU, beam-search evaluation, metrics.

Trains one model per task (caption, refcoco, vqa) for a fixed time budget with ``train.py``, evaluates the
trained model and its untrained starting point with ``evaluate.py`` on the test split, and prints both.
Run it through ``bash run_scripts/demo.sh`` (which sets up ``.venv``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Original layout of released checkpoints (so a released ofa_tiny.pt can be named with --restore-file).
MODEL_FLAGS = ["--arch", "ofa_tiny", "--scale-attn", "--scale-fc", "--scale-heads"]


@dataclass
class DemoTask:
    """How one task is trained and evaluated on the tiny data."""

    task: str
    folder: str
    metric: str
    train_cols: str
    eval_cols: str
    train_flags: list[str] = field(default_factory=list)
    eval_flags: list[str] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)


def demo_tasks(data: Path) -> dict[str, DemoTask]:
    vqa_labels = str(data / "vqa" / "trainval_ans2label.pkl")
    return {
        "caption": DemoTask(
            "caption", "caption", "CIDEr", "0,4,2", "1,4,2",
            train_flags=["--max-tgt-length", "20"],
            eval_flags=["--beam", "5", "--max-len-b", "16", "--no-repeat-ngram-size", "3"],
            overrides={"eval_cider": False}),
        "refcoco": DemoTask(
            "refcoco", "refcoco", "score", "0,4,2,3", "0,4,2,3",
            # boxes are quantised relative to max_image_size: the tiny images are 128 px wide at most
            train_flags=["--max-image-size", "128"],
            eval_flags=["--beam", "5", "--min-len", "4", "--max-len-a", "0", "--max-len-b", "4",
                        "--no-repeat-ngram-size", "3"]),
        "vqa": DemoTask(
            "vqa_gen", "vqa", "vqa_score", "0,5,2,3,4", "0,5,2,3,4",
            train_flags=["--ans2label-file", vqa_labels, "--prompt-type", "prev_output", "--add-object",
                         "--max-object-length", "10", "--max-tgt-length", "10"],
            eval_flags=["--beam-search-vqa-eval", "--beam", "5", "--unnormalized"],
            overrides={"ans2label_file": vqa_labels}),
    }


def run(cmd: list[str], log: Path, quiet: bool) -> None:
    """Run a command, keeping its output in ``log``; on failure print the log's tail and stop."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "w") as handle:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=handle if quiet else None,
                              stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:] if quiet else []
        sys.exit("\n".join(tail + [f"demo: command failed ({proc.returncode}), log: {log}", " ".join(cmd)]))


def train(spec: DemoTask, data: Path, save_dir: Path, args) -> Path:
    """Finetune for ``args.minutes`` minutes (or ``args.max_update`` updates); returns checkpoint_last.pt."""
    folder = data / spec.folder
    cmd = [sys.executable, "train.py", f"{folder}/train.tsv,{folder}/valid.tsv", "--user-dir", ".",
           "--task", spec.task, "--selected-cols", spec.train_cols, "--patch-image-size", str(args.image_size),
           *MODEL_FLAGS, "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
           "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-08", "--clip-norm", "1.0",
           "--lr", str(args.lr), "--lr-scheduler", "polynomial_decay", "--warmup-ratio", "0.1",
           "--max-update", str(args.max_update), "--stop-time-hours", str(args.minutes / 60),
           "--batch-size", str(args.batch_size), "--num-workers", "0", "--cpu", "--seed", "1",
           "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--disable-validation",
           "--log-format", "tqdm", "--log-interval", "10",
           "--tensorboard-logdir", str(args.output / "tensorboard" / spec.folder),
           *spec.train_flags]
    if args.restore_file:
        cmd += ["--restore-file", args.restore_file, "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
    run(cmd, args.output / "logs" / f"{spec.folder}_train.log", quiet=args.quiet)
    return save_dir / "checkpoint_last.pt"


def starting_point(trained: Path, restore_file: str | None, out: Path) -> Path:
    """The untrained model (seeded random weights, or the --restore-file weights) with the trained run's config."""
    import torch
    from fairseq import tasks

    from tasks.loading import register_ofa_components
    from utils.checkpoint_utils import load_checkpoint_to_cpu, load_model_state, save_checkpoint_file, torch_load_safely

    register_ofa_components()
    cfg = load_checkpoint_to_cpu(str(trained))["cfg"]
    torch.manual_seed(1)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    if restore_file:
        load_model_state(model, load_checkpoint_to_cpu(restore_file)["model"], restore_file)
    raw = torch_load_safely(str(trained))  # the file as written, so the copy keeps its exact format
    save_checkpoint_file({**raw, "model": model.state_dict(), "last_optimizer_state": None}, str(out))
    return out


def evaluate(spec: DemoTask, data: Path, checkpoint: Path, results: Path, args) -> dict:
    test = data / spec.folder / "test.tsv"
    overrides = {"data": str(test), "bpe_dir": str(REPO / "utils" / "BPE"), "selected_cols": spec.eval_cols,
                 **spec.overrides}
    cmd = [sys.executable, "evaluate.py", str(test), "--path", str(checkpoint), "--user-dir", ".",
           "--task", spec.task, "--batch-size", "16", "--gen-subset", "test", "--results-path", str(results),
           "--seed", "7", "--cpu", "--num-workers", "0", "--model-overrides", repr(overrides), *spec.eval_flags]
    run(cmd, args.output / "logs" / f"{spec.folder}_{results.name}_eval.log", quiet=args.quiet)
    return json.loads((results / "test_metrics.json").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="caption,refcoco,vqa", help="comma-separated: caption,refcoco,vqa")
    parser.add_argument("--minutes", type=float, default=1.5, help="training time per task (wall clock)")
    parser.add_argument("--max-update", type=int, default=150, help="updates per task (the LR schedule's length)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--image-size", type=int, default=96, help="--patch-image-size (tiny images are 96 px)")
    parser.add_argument("--restore-file", default=None, help="start from this checkpoint (e.g. a released ofa_tiny.pt)")
    parser.add_argument("--output", type=Path, default=REPO / "checkpoints" / "demo", help="checkpoints, logs, results")
    parser.add_argument("--data", type=Path, default=REPO / "dataset" / "tiny", help="the tiny dataset (made if missing)")
    parser.add_argument("--quiet", action="store_true", help="keep train/evaluate output in the log files only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # train/evaluate log to their own files; keep this output short

    from dataset.make_tiny_dataset import make_tiny_dataset

    start = time.time()
    specs = demo_tasks(args.data)
    names = [name.strip() for name in args.tasks.split(",")]
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {', '.join(specs)}")
    print(f"[demo] tiny dataset in {args.data}")
    make_tiny_dataset(args.data, tasks=[specs[n].folder for n in names], image_size=96)

    rows = []
    for name in names:
        spec = specs[name]
        save_dir = args.output / spec.folder
        print(f"[demo] {name}: finetuning ofa_tiny for up to {args.minutes:g} min ({args.max_update} updates)")
        trained = train(spec, args.data, save_dir, args)
        untrained = starting_point(trained, args.restore_file, save_dir / "checkpoint_untrained.pt")
        print(f"[demo] {name}: beam-search evaluation on the test split")
        before = evaluate(spec, args.data, untrained, args.output / "results" / spec.folder / "untrained", args)
        after = evaluate(spec, args.data, trained, args.output / "results" / spec.folder / "trained", args)
        rows.append((name, spec.metric, before[spec.metric], after[spec.metric]))

    print(f"\n{'task':<10}{'metric':<12}{'untrained':>12}{'finetuned':>12}")
    for name, metric, before, after in rows:
        print(f"{name:<10}{metric:<12}{before:>12.4f}{after:>12.4f}")
    print(f"\n[demo] done in {(time.time() - start) / 60:.1f} min")
    print(f"[demo] checkpoints: {args.output}/<task>/checkpoint_last.pt")
    print(f"[demo] logs:        {args.output}/logs/  (tensorboard --logdir {args.output}/tensorboard)")
    print(f"[demo] results:     {args.output}/results/<task>/{{untrained,trained}}/test_predict.json, test_metrics.json")


if __name__ == "__main__":
    main()
