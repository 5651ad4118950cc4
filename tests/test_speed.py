"""Speed and memory options: mixed precision on CPU, channels-last image encoders, activation checkpointing,
the trie-restricted all-candidate scorer. Numbers, not timings: the benchmarks time them."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = [
    "--arch", "ofa_tiny", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "64",
    "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--resnet-type", "resnet18",
]


@pytest.fixture(scope="module")
def caption_data(tmp_path_factory) -> str:
    from dataset.make_tiny_dataset import make_tiny_dataset

    folder = tmp_path_factory.mktemp("caption")
    files = make_tiny_dataset(str(folder / "tiny"), seed=0, tasks=["caption"], image_size=48)["caption"]
    return f"{files['train']},{files['valid']}"


def build_trainer(data: str, *flags: str):
    """A caption Trainer of a shrunk ofa_tiny on CPU, seeded so every call starts from the same weights."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from trainer import Trainer
    from utils.checkpoint_utils import register_ofa_components

    register_ofa_components()
    args = options.parse_args_and_arch(options.get_training_parser(), [
        data, "--task", "caption", *TINY_MODEL, "--selected-cols", "0,4,2", "--patch-image-size", "32",
        "--max-src-length", "20", "--max-tgt-length", "12", "--criterion", "adjust_label_smoothed_cross_entropy",
        "--label-smoothing", "0.1", "--optimizer", "adam", "--lr", "1e-4", "--batch-size", "4", "--cpu",
        "--num-workers", "0", "--seed", "1", "--dropout", "0", "--attention-dropout", "0", *flags,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(1)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    batches = trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)
    return trainer, batches


def train_losses(data: str, steps: int, *flags: str) -> tuple[list[float], object]:
    trainer, batches = build_trainer(data, *flags)
    return [trainer.train_step([next(batches)])["loss"] for _ in range(steps)], trainer


def test_amp_trains_on_cpu_close_to_fp32_without_loss_scaling(caption_data, caplog):
    with caplog.at_level(logging.INFO, logger="trainer"):
        losses, trainer = train_losses(caption_data, 2, "--amp")
    assert "training precision: amp: bfloat16 autocast on cpu" in caplog.text
    reference, _ = train_losses(caption_data, 2)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses == pytest.approx(reference, rel=0.02)
    assert losses != reference  # really computed in another precision
    scaler = trainer.optimizer.scaler  # bfloat16 has fp32's range: a constant scale that only skips inf steps
    assert scaler.is_enabled() and scaler.get_scale() == 1.0 and scaler._device == "cpu"


def test_bf16_training_without_gpu_points_to_amp(caption_data):
    from trainer import TrainingSetupError

    with pytest.raises(TrainingSetupError, match="use --amp"):
        build_trainer(caption_data, "--bf16")


def test_evaluate_with_amp_on_cpu_casts_the_model_once(shared, tmp_path):
    """bfloat16 inference on CPU: the e2e checkpoint still writes the original's captions."""
    import importlib.util
    import json
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("ckpt_pack", shared / "ckpt_pack.py")
    ckpt_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt_pack)
    e2e, checkpoint = shared / "e2e_caption", tmp_path / "checkpoint.pt"
    ckpt_pack.unpack(str(e2e / "checkpoint.packed.pt"), str(checkpoint), str(shared / "rp_buckets.pt"))
    overrides = repr({"data": str(e2e / "test.tsv"), "bpe_dir": str(REPO / "utils" / "BPE"), "eval_cider": False,
                      "selected_cols": "0,4,2"})
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), str(e2e / "test.tsv"), f"--path={checkpoint}",
         f"--user-dir={REPO}", "--task=caption", "--batch-size=2", "--seed=7", "--gen-subset=test",
         f"--results-path={tmp_path}", "--beam=5", "--max-len-b=16", "--no-repeat-ngram-size=3", "--cpu",
         "--num-workers=0", "--amp", f"--model-overrides={overrides}"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "inference precision: bfloat16" in proc.stdout
    predictions = json.loads((tmp_path / "test_predict.json").read_text())
    assert predictions == json.loads((e2e / "expected_predict.json").read_text())
