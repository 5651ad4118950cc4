"""The README's main command: tiny data, finetune ``ofa_tiny`` on CPU, beam-search evaluation, metrics.

Trains one model per task (caption, refcoco, vqa) for a fixed number of updates with ``train.py``, evaluates the
trained model and its untrained starting point with ``evaluate.py`` on the test split, prints both, and draws
test images with predictions beside the ground truth into ``demo.png``. The console gets one line per stage
(and the command it runs); each command's full output goes to a log file under ``<output>/logs/``.
Run it through ``bash run_scripts/demo.sh`` (which sets up ``.venv``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Original layout of released checkpoints (so a released ofa_tiny.pt can be named with --restore-file).
MODEL_FLAGS = ["--arch", "ofa_tiny", "--scale-attn", "--scale-fc", "--scale-heads"]
DEMO_BINS = 32  #: RefCOCO's --num-bins in the demo


@dataclass
class DemoTask:
    """How one task is trained and evaluated on the tiny data."""

    task: str
    folder: str
    train_cols: str
    eval_cols: str
    train_flags: list[str] = field(default_factory=list)
    eval_flags: list[str] = field(default_factory=list)  #: beyond the task's generation defaults
    overrides: dict = field(default_factory=dict)
    max_update: int = 120  #: the update budget (--max-update overrides it for every task)
    lr: float = 5e-4

    @property
    def task_class(self):
        from fairseq.tasks import TASK_REGISTRY

        from tasks.loading import register_ofa_components

        register_ofa_components()
        return TASK_REGISTRY[self.task]

    @property
    def metric(self) -> str:
        return self.task_class.metric_name

    def generation_flags(self) -> list[str]:
        """The generation flags of the task's evaluate script (its ``generation_defaults``), then ``eval_flags``."""
        flags = []
        for name, value in self.task_class.generation_defaults.items():
            flag = "--" + name.replace("_", "-")
            flags += [flag] if value is True else [flag, str(value)]
        return flags + self.eval_flags


def bin_range(num_bins: int) -> str:
    """``--constraint-range`` of the ``<bin_i>`` tokens of a dictionary with ``num_bins`` of them."""
    from data.dictionary import VocabLayout, load_ofa_dictionary

    bins = VocabLayout.of(load_ofa_dictionary(num_bins=num_bins)).bins
    return f"{bins.start},{bins.stop}"


def demo_tasks(data: Path, image_size: int, pretrained: bool = False) -> dict[str, DemoTask]:
    """The three tasks; ``pretrained`` (--restore-file) keeps the original's box coordinates, which released
    checkpoints were trained with (1000 bins relative to 512 px)."""
    num_bins, max_image_size = (1000, 512) if pretrained else (DEMO_BINS, image_size)
    vqa_labels = str(data / "vqa" / "trainval_ans2label.pkl")
    return {
        "caption": DemoTask(
            "caption", "caption", "0,4,2", "1,4,2",
            train_flags=["--max-tgt-length", "20"],
            overrides={"eval_cider": False, "skip_coco_scores": True}),  # CIDEr-D, as validation reports it
        "refcoco": DemoTask(
            "refcoco", "refcoco", "0,4,2,3", "0,4,2,3",
            # from scratch, coordinates relative to the resized image in 32 bins (3 px at 96 px) instead of the
            # original's 1000 relative to 512 px: each bin token is learned on its own, and 1000 of them get too
            # few examples in the budget; the loss and the generator see only the <bin_i> tokens
            train_flags=["--max-image-size", str(max_image_size), "--num-bins", str(num_bins),
                         "--constraint-range", bin_range(num_bins)],
            max_update=150, lr=1e-3),
        "vqa": DemoTask(
            "vqa_gen", "vqa", "0,5,2,3,4", "0,5,2,3,4",
            train_flags=["--ans2label-file", vqa_labels, "--prompt-type", "prev_output", "--add-object",
                         "--max-object-length", "10", "--max-tgt-length", "10"],
            eval_flags=["--beam-search-vqa-eval"],
            overrides={"ans2label_file": vqa_labels}, max_update=100),
    }


def run(cmd: list[str], log: Path, label: str, args, total_updates: int | None = None) -> None:
    """Print ``label`` and the command, run it with its output in ``log`` (also on the console with
    ``--verbose``); a progress bar follows the updates of a training run. On failure print the log's tail."""
    from tqdm import tqdm

    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    print(f"[demo] {label}  (log: {log})")
    print("       $ " + shlex.join(cmd), flush=True)
    with open(log, "w") as handle:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=None if args.verbose else handle,
                                stderr=None if args.verbose else subprocess.STDOUT)
        bar = tqdm(total=total_updates, unit="update", leave=False, disable=total_updates is None or args.verbose,
                   mininterval=1 if sys.stderr.isatty() else 30)  # a log file gets a line now and then
        while proc.poll() is None:
            time.sleep(1)
            if total_updates is not None and not args.verbose:
                bar.update(max(0, _last_update(log) - bar.n))
        bar.close()
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:] if not args.verbose else []
        sys.exit("\n".join(tail + [f"demo: command failed ({proc.returncode}), log: {log}", shlex.join(cmd)]))


_NUM_UPDATES = re.compile(r"num_updates[=: ]+(\d+)")


def _last_update(log: Path) -> int:
    """The latest ``num_updates`` train.py logged (0 before the first)."""
    found = _NUM_UPDATES.findall(log.read_text(errors="replace")[-4000:])
    return int(found[-1]) if found else 0


def train(spec: DemoTask, data: Path, save_dir: Path, args) -> Path:
    """Finetune for the task's update budget; returns checkpoint_last.pt."""
    folder = data / spec.folder
    max_update = args.max_update or spec.max_update
    cmd = [sys.executable, "train.py", f"{folder}/train.tsv,{folder}/valid.tsv", "--user-dir", ".",
           "--task", spec.task, "--selected-cols", spec.train_cols, "--patch-image-size", str(args.image_size),
           *MODEL_FLAGS, "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
           "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-08", "--clip-norm", "1.0",
           "--lr", str(args.lr or spec.lr), "--lr-scheduler", "polynomial_decay", "--warmup-ratio", "0.1",
           "--max-update", str(max_update), "--batch-size", str(args.batch_size), "--num-workers", "0", "--cpu",
           "--seed", "1", "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--disable-validation",
           "--log-format", "simple", "--log-interval", "1",
           "--tensorboard-logdir", str(args.output / "tensorboard" / spec.folder),
           *spec.train_flags, *(["--amp"] if args.precision == "amp" else [])]
    if args.restore_file:
        cmd += ["--restore-file", args.restore_file, "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
    precision = " (--amp: bfloat16 autocast)" if args.precision == "amp" else " (fp32)"
    run(cmd, args.output / "logs" / f"{spec.folder}_train.log", f"{spec.folder}: finetuning ofa_tiny for "
        f"{max_update} updates{precision}", args, total_updates=max_update)
    return save_dir / "checkpoint_last.pt"


def check_fresh(output: Path, folders: list[str], resume: bool, overwrite: bool) -> None:
    """A new run never continues an earlier one by accident: refuse unless --resume or --overwrite."""
    earlier = [output / folder for folder in folders if (output / folder / "checkpoint_last.pt").is_file()]
    if not earlier or resume:
        return
    if not overwrite:
        sys.exit(f"demo: {earlier[0]} holds an earlier run's checkpoint_last.pt; --resume continues it, "
                 f"--overwrite starts over, or choose another --output")
    for folder in earlier:
        shutil.rmtree(folder)


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
    overrides = {"bpe_dir": str(REPO / "utils" / "BPE"), "selected_cols": spec.eval_cols, **spec.overrides}
    cmd = [sys.executable, "evaluate.py", str(test), "--path", str(checkpoint), "--user-dir", ".",
           "--task", spec.task, "--batch-size", "16", "--gen-subset", "test", "--results-path", str(results),
           "--seed", "7", "--cpu", "--num-workers", "0", "--model-overrides", repr(overrides), *spec.generation_flags()]
    run(cmd, args.output / "logs" / f"{spec.folder}_{results.name}_eval.log",
        f"{spec.folder}: beam-search evaluation of the {results.name} model on the test split", args)
    return json.loads((results / "test_metrics.json").read_text())


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def prior_score(name: str, data: Path) -> float | None:
    """What guessing from the training data alone scores on test: VQA, the most common answer of each question
    type (its first two words); RefCOCO, the mean training box. None for captions."""
    from data.mm_data.vqa_gen_dataset import parse_answers
    from utils.metrics import grounding_hits

    if name == "vqa":
        counts: dict[str, dict[str, int]] = {}
        for row in _rows(data / "vqa" / "train.tsv"):
            answers = parse_answers(row[3])
            best = max(answers, key=answers.get)
            by_type = counts.setdefault(" ".join(row[2].split()[:2]), {})
            by_type[best] = by_type.get(best, 0) + 1
        guess = {qtype: max(answers, key=answers.get) for qtype, answers in counts.items()}
        test = _rows(data / "vqa" / "test.tsv")
        scores = [parse_answers(row[3]).get(guess.get(" ".join(row[2].split()[:2]), ""), 0.0) for row in test]
        return sum(scores) / len(scores)
    if name == "refcoco":
        import torch

        def boxes(split: str) -> torch.Tensor:
            rows = _rows(data / "refcoco" / f"{split}.tsv")
            return torch.tensor([[float(v) for v in row[3].split(",")] for row in rows])

        test_boxes = boxes("test")
        mean_box = boxes("train").mean(0, keepdim=True).expand_as(test_boxes)
        return float(grounding_hits(mean_box, test_boxes).float().mean())
    return None


def draw_demo_png(names: list[str], specs: dict[str, DemoTask], args, path: Path, per_task: int = 4) -> None:
    """A grid: one row per task, ``per_task`` test images with the prediction (red box) and truth (green)."""
    from io import BytesIO

    from PIL import Image

    from data.images import base64_bytes
    from data.mm_data.vqa_gen_dataset import parse_answers
    from inference import OFAPredictor, Request
    from inference.draw import describe, draw_prediction

    cells = []
    for name in names:
        spec = specs[name]
        predictor = OFAPredictor.from_checkpoint(args.output / spec.folder / "checkpoint_last.pt", device="cpu",
                                                 model_overrides={"ans2label_file": spec.overrides["ans2label_file"]}
                                                 if "ans2label_file" in spec.overrides else None)
        row_cells = []
        for row in _rows(args.data / spec.folder / "test.tsv")[:per_task]:
            if name == "caption":
                request, truth, box = Request(base64_bytes(row[4])), row[2].split("&&")[0], None
            elif name == "vqa":
                answers = parse_answers(row[3])
                request, truth, box = Request(base64_bytes(row[5]), row[2]), max(answers, key=answers.get), None
            else:
                request, truth, box = Request(base64_bytes(row[4]), row[2]), row[2], row[3].split(",")
            output = predictor.predict_batch([request])[0]
            with Image.open(BytesIO(request.image)) as image:
                question = f"{row[2]} " if name == "vqa" else ""
                text = (f"{row[2]} (red: predicted, green: true)" if name == "refcoco"
                        else f"{question}predicted: {describe(output)} | true: {truth}")
                row_cells.append(draw_prediction(image.resize((image.width * 2, image.height * 2)), {
                    **output, **({"box": [v * 2 for v in output["box"]]} if "box" in output else {})},
                    text=text, truth_box=[float(v) * 2 for v in box] if box else None))
        cells.append(row_cells)
    width = max(sum(c.width for c in row) for row in cells) + 8 * per_task
    heights = [max(c.height for c in row) for row in cells]
    grid = Image.new("RGB", (width, sum(heights) + 8 * len(cells)), "white")
    y = 0
    for row, height in zip(cells, heights):
        x = 0
        for cell in row:
            grid.paste(cell, (x, y))
            x += cell.width + 8
        y += height + 8
    grid.save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="caption,refcoco,vqa", help="comma-separated: caption,refcoco,vqa")
    parser.add_argument("--max-update", type=int, default=None,
                        help="updates per task, the LR schedule's length (default: each task's own budget)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: each task's own)")
    parser.add_argument("--image-size", type=int, default=64,
                        help="--patch-image-size (the tiny images are 96 px; 64 trains about 1.3x faster)")
    parser.add_argument("--restore-file", default=None,
                        help="start from this checkpoint, e.g. ofa:ofa_tiny (a released one, downloaded once)")
    parser.add_argument("--output", type=Path, default=REPO / "checkpoints" / "demo", help="checkpoints, logs, results")
    parser.add_argument("--data", type=Path, default=REPO / "dataset" / "tiny",
                        help="the tiny dataset (made if missing)")
    parser.add_argument("--resume", action="store_true", help="continue the run already in --output")
    parser.add_argument("--overwrite", action="store_true", help="delete the run already in --output and start over")
    parser.add_argument("--precision", choices=("auto", "amp", "fp32"), default="auto",
                        help="train with --amp (bfloat16 autocast, about 1.35x faster here) or in fp32; auto: --amp "
                             "where the CPU has bfloat16 instructions (AVX512-BF16/AMX), else fp32")
    parser.add_argument("--no-png", action="store_true", help="skip demo.png")
    parser.add_argument("--verbose", action="store_true",
                        help="show train.py/evaluate.py output and library warnings on the console too")
    args = parser.parse_args(argv)
    if args.precision == "auto":
        from utils.precision import cpu_computes_bf16_natively

        args.precision = "amp" if cpu_computes_bf16_natively() else "fp32"
    sys.stdout.reconfigure(line_buffering=True)  # stage lines appear as they happen, also in a pipe or file
    from utils.logging_setup import SHOW_WARNINGS_ENV, configure_logging

    configure_logging(verbose=args.verbose)
    if args.verbose:
        os.environ[SHOW_WARNINGS_ENV] = "1"

    from dataset.make_tiny_dataset import make_tiny_dataset
    from utils.hub import HubError, resolve

    if args.restore_file:
        try:
            args.restore_file = resolve(args.restore_file)
        except HubError as err:
            raise SystemExit(f"demo.py: error: {err}") from None
    start = time.time()
    specs = demo_tasks(args.data, args.image_size, pretrained=bool(args.restore_file))
    names = [name.strip() for name in args.tasks.split(",")]
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {', '.join(specs)}")
    check_fresh(args.output, [specs[n].folder for n in names], args.resume, args.overwrite)
    print(f"[demo] tiny dataset in {args.data}")
    make_tiny_dataset(args.data, tasks=[specs[n].folder for n in names], image_size=96)

    rows = []
    for name in names:
        task_start = time.time()
        spec = specs[name]
        save_dir = args.output / spec.folder
        trained = train(spec, args.data, save_dir, args)
        untrained = starting_point(trained, args.restore_file, save_dir / "checkpoint_untrained.pt")
        before = evaluate(spec, args.data, untrained, args.output / "results" / spec.folder / "untrained", args)
        after = evaluate(spec, args.data, trained, args.output / "results" / spec.folder / "trained", args)
        rows.append((name, spec.metric, prior_score(name, args.data), before[spec.metric], after[spec.metric],
                     (time.time() - task_start) / 60))
    if not args.no_png:
        print("[demo] drawing test images with predictions and ground truth", flush=True)
        draw_demo_png(names, specs, args, args.output / "demo.png")

    print(f"\n{'task':<10}{'metric':<12}{'prior':>10}{'untrained':>12}{'finetuned':>12}{'minutes':>10}")
    for name, metric, prior, before, after, minutes in rows:
        prior_text = "-" if prior is None else f"{prior:.4f}"
        print(f"{name:<10}{metric:<12}{prior_text:>10}{before:>12.4f}{after:>12.4f}{minutes:>10.1f}")
    print("(prior: guessing from the training data alone; vqa: the commonest answer per question type, "
          "refcoco: the mean box)")
    print(f"\n[demo] done in {(time.time() - start) / 60:.1f} min")
    print(f"[demo] checkpoints: {args.output}/<task>/checkpoint_last.pt")
    print(f"[demo] logs:        {args.output}/logs/  (tensorboard --logdir {args.output}/tensorboard)")
    print(f"[demo] results:     {args.output}/results/<task>/{{untrained,trained}}/"
          "test_predict.json, test_metrics.json")
    if not args.no_png:
        print(f"[demo] pictures:    {args.output}/demo.png")


if __name__ == "__main__":
    main()
