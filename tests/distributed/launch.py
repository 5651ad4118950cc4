"""Tiny train.py/evaluate.py launches for the multi-rank tests: ``torchrun`` with two gloo ranks on CPU, or one
process, and what their ``--log-format json`` logs say."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

# an ofa_tiny-shaped model small enough for two ranks on two shared cores; no dropout and frozen BatchNorm so that
# the same rows give the same losses however they are split into batches and ranks
TINY_MODEL = (
    "--arch", "ofa_tiny", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
    "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--resnet-type", "resnet18",
    "--freeze-resnet", "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0",
    "--patch-image-size", "32", "--max-src-length", "24", "--max-tgt-length", "12",
)
SELECTED_COLS = {"caption": "0,4,2", "vqa_gen": "0,5,2,3,4", "refcoco": "0,4,2,3"}
IMAGE_COLUMN = {"caption": 4, "vqa_gen": 5, "refcoco": 4}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher(ranks: int) -> list:
    """``python`` for one process, ``python -m torch.distributed.run`` (torchrun) for several."""
    if ranks == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port())]


def train_command(ranks: int, data: str, save_dir: Path, task: str, *extra: str) -> list:
    """A tiny train.py run of ``task`` on ``ranks`` processes."""
    return [*launcher(ranks), str(REPO / "train.py"), data, "--user-dir", str(REPO), "--task", task, *TINY_MODEL,
            "--selected-cols", SELECTED_COLS[task], "--criterion", "adjust_label_smoothed_cross_entropy",
            "--label-smoothing", "0.1", "--optimizer", "adam", "--clip-norm", "1.0",
            "--lr-scheduler", "polynomial_decay", "--lr", "1e-3", "--warmup-ratio", "0.25", "--num-workers", "0",
            "--cpu", "--seed", "3", "--log-format", "json", "--log-interval", "1", "--save-dir", str(save_dir),
            *extra]


def run(command: list, timeout: int = 600) -> str:
    """Run ``command`` to success; its stdout and stderr."""
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    log = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "Error" in line]  # torchrun buries tracebacks
    assert result.returncode == 0, "\n".join(errors[:5]) + "\n" + log[-3000:]
    return log


def logged(log: str, tag: str) -> list:
    """The stats dicts of the ``| tag |`` lines of a ``--log-format json`` log, numbers as floats."""
    records = []
    for line in log.splitlines():
        if f"| {tag} | " in line:
            stats = json.loads(line.split(f"| {tag} | ", 1)[1])
            records.append({k: float(v) if k not in ("epoch",) else int(v) for k, v in stats.items()})
    return records


def losses(log: str) -> dict:
    """``num_updates -> train_inner stats``."""
    return {int(s["num_updates"]): s for s in logged(log, "train_inner")}


def head(source: Path, rows: int, target: Path) -> Path:
    """The first ``rows`` rows of ``source`` as ``target``."""
    target.write_text("".join(source.read_text().splitlines(keepends=True)[:rows]))
    return target


def with_bad_rows(source: Path, target: Path, task: str, bad: dict) -> str:
    """``source``'s rows written to ``target``, the rows in ``bad`` broken as users break them: ``"base64"``
    (not base64), ``"bytes"`` (base64 of bytes that are no image) or ``"empty"`` (no image at all)."""
    broken = {"base64": "not*base64", "bytes": "bm90IGFuIGltYWdl", "empty": ""}
    rows = [line.split("\t") for line in source.read_text().splitlines()]
    for index, how in bad.items():
        rows[index][IMAGE_COLUMN[task]] = broken[how]
    target.write_text("".join("\t".join(row) + "\n" for row in rows))
    return str(target)


def process_tree(pid: int) -> list:
    """``pid`` and its descendants."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return [pid, *(p for child in children for p in process_tree(child))]


class Launch:
    """A launch in the background whose log is read line by line (to act at a given update)."""

    def __init__(self, command: list):
        self.process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list = []

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.lines.append(line)
            if text in line:
                return
            assert time.monotonic() < deadline, f"{text!r} not logged in {timeout} s"
        raise AssertionError(f"{text!r} never logged:\n" + "".join(self.lines)[-3000:])

    def finish(self, timeout: float) -> Optional[int]:
        """Read the rest of the log; the return code, or None when the launch did not end within ``timeout``."""
        try:
            rest, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed(process_tree(self.process.pid)):
                os.kill(pid, signal.SIGKILL)
            rest, _ = self.process.communicate()
            self.lines.append(rest)
            return None
        self.lines.append(rest)
        return self.process.returncode

    @property
    def log(self) -> str:
        return "".join(self.lines)


def validate_in_process(checkpoint: Path) -> dict:
    """The stats that train.py's ``validate`` logs for ``checkpoint``'s weights, computed by this one process:
    the one-rank reference of a multi-rank validation."""
    import logging
    from types import SimpleNamespace

    from fairseq import tasks
    from omegaconf import open_dict

    import train
    from trainer import Trainer
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    cfg = load_checkpoint_to_cpu(str(checkpoint))["cfg"]
    with open_dict(cfg):
        cfg.distributed_training.update(distributed_world_size=1, distributed_rank=0, ddp_backend="c10d",
                                        distributed_init_method=None)
    task = tasks.setup_task(cfg.task)
    for subset in cfg.dataset.valid_subset.split(","):
        task.load_dataset(subset)
    trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
    trainer.load_checkpoint(str(checkpoint))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    progress_logger = logging.getLogger("fairseq.logging.progress_bar")
    progress_logger.addHandler(handler)
    level = progress_logger.level
    progress_logger.setLevel(logging.INFO)  # pytest's root logger level may hide INFO
    try:
        train.validate(cfg, trainer, task, SimpleNamespace(epoch=1), cfg.dataset.valid_subset.split(","))
    finally:
        progress_logger.removeHandler(handler)
        progress_logger.setLevel(level)
    [stats] = [json.loads(r.getMessage()) for r in records if r.getMessage().startswith("{")]
    return {k: float(v) for k, v in stats.items() if k != "epoch"}
