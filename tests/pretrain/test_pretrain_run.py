"""Pretraining end to end on CPU: train.py --task unify_task on the tiny pretraining files, resuming from its own
mid-run checkpoint, and the pretraining script continuing from an original-format checkpoint."""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real pretraining runs (the dry runs share their fixtures)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# the shape of the original-format checkpoint in ../shared/reference/e2e_caption (ofa_tiny shrunk, NormFormer on)
MODEL_ARGS = ("--encoder-layers=1 --decoder-layers=1 --encoder-embed-dim=64 --decoder-embed-dim=64 "
              "--encoder-ffn-embed-dim=64 --decoder-ffn-embed-dim=64 --encoder-attention-heads=2 "
              "--decoder-attention-heads=2 --resnet-type=resnet18 --scale-attn --scale-fc --scale-heads").split()
UPDATES, SAVED_AT = 6, 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from dataset.make_tiny_pretrain_data import make_tiny_pretrain_data

    folder = tmp_path_factory.mktemp("pretrain_data")
    make_tiny_pretrain_data(folder, seed=0, image_size=48, code_image_size=32)
    return folder


def train_args(data: Path, save_dir: Path, *extra: str) -> list:
    """The original pretraining flags (run_scripts/pretraining/pretrain_ofa_base.sh) at CPU-test size."""
    return [
        str(data / "vision_language_examples.tsv"), "--user-dir", str(REPO), "--task", "unify_task",
        "--arch", "ofa_tiny", *MODEL_ARGS,
        "--text-data", str(data / "text_examples.tsv"), "--image-data", str(data / "image_examples.tsv"),
        "--detection-data", str(data / "detection_examples.tsv"), "--selected-cols", "0,1,2,3,4,5,6,7",
        "--text-selected-cols", "0,1", "--image-selected-cols", "0,1,2", "--detection-selected-cols", "0,1,2",
        "--neg-sample-dir", str(data / "negative_sample"),
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.0",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-08", "--clip-norm", "5.0",
        "--weight-decay", "0.01", "--lr-scheduler", "polynomial_decay", "--lr", "1e-3", "--warmup-ratio", "0.01",
        "--max-epoch", "1", "--max-update", str(UPDATES), "--batch-size", "4", "--update-freq", "1",
        "--patch-image-size", "32", "--code-image-size", "32", "--sample-patch-num", "2", "--max-image-size", "512",
        "--max-src-length", "40", "--max-tgt-length", "20", "--num-bins", "1000",
        "--encoder-drop-path-rate", "0.1", "--decoder-drop-path-rate", "0.1", "--dropout", "0.1",
        "--num-workers", "0", "--cpu", "--seed", "3", "--log-format", "json", "--log-interval", "1",
        "--save-dir", str(save_dir), "--disable-validation", "--no-epoch-checkpoints", *extra,
    ]


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, **{"env": ENV, **kwargs})


def logged_updates(stdout: str) -> dict:
    updates = {}
    for line in stdout.splitlines():
        if "| train_inner |" in line:
            stats = json.loads(line.split("| train_inner | ", 1)[1])
            updates[int(stats["num_updates"])] = {k: float(v) for k, v in stats.items() if k != "epoch"}
    return updates


@pytest.fixture(scope="module")
def pretrain_run(data_dir, module_tmp_dir):
    save_dir = module_tmp_dir("pretrain")
    result = run([sys.executable, str(REPO / "train.py"),
                  *train_args(data_dir, save_dir, "--save-interval-updates", str(SAVED_AT))])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return save_dir, logged_updates(result.stdout)


def test_pretraining_mixes_all_tasks(pretrain_run):
    save_dir, updates = pretrain_run
    assert sorted(updates) == list(range(1, UPDATES + 1))
    mixed = 0
    for stats in updates.values():
        assert stats["loss"] == stats["loss"] and stats["loss"] > 0  # finite
        assert stats["sample_size_v1"] > 0 or stats["sample_size_v2"] == 0
        # 4 rows, each with an image-text matching or grounded captioning sample; fairseq shuffles the batch
        # order, and a batch holding an 8th row adds 2 text, 1 image and 1 detection sample as a second view
        if stats["sample_size_v2"] > 0:
            mixed += 1
            assert stats["nsentences"] == 8 + 4 and stats["loss_v2"] > 0
        else:
            assert stats["nsentences"] == 8
    assert 0 < mixed < UPDATES
    assert (save_dir / f"checkpoint_1_{SAVED_AT}.pt").is_file() and (save_dir / "checkpoint_last.pt").is_file()


def test_resume_from_its_own_checkpoint(data_dir, pretrain_run, tmp_path):
    reference_dir, reference = pretrain_run
    shutil.copyfile(reference_dir / f"checkpoint_1_{SAVED_AT}.pt", tmp_path / "checkpoint_last.pt")
    result = run([sys.executable, str(REPO / "train.py"), *train_args(data_dir, tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"checkpoint_last.pt (epoch 1 @ {SAVED_AT} updates)" in result.stdout
    updates = logged_updates(result.stdout)
    assert sorted(updates) == list(range(SAVED_AT + 1, UPDATES + 1))
    for num_updates, stats in updates.items():  # the same rows, augmentations and side-stream samples
        assert stats["loss"] == reference[num_updates]["loss"], num_updates
        assert stats["sample_size_v2"] == reference[num_updates]["sample_size_v2"], num_updates


@pytest.fixture(scope="module")
def original_checkpoint(e2e_caption_checkpoint) -> Path:
    """The original-format checkpoint of ../shared/reference/e2e_caption (``cfg`` with argparse.Namespace): the
    session's, read-only (restored from, never written)."""
    return e2e_caption_checkpoint


def script_env(data_dir: Path, tmp_path: Path, restore_file: str, extra_args: str) -> dict:
    return {**ENV, "NUM_GPUS": "0", "LAUNCHER": "python", "NPROC_PER_NODE": "1", "DATA_DIR": str(data_dir),
            "CHECKPOINT_ROOT": str(tmp_path / "checkpoints"), "SAVE_DIR": str(tmp_path / "saved"),
            "LOG_DIR": str(tmp_path / "logs"), "RESTORE_FILE": restore_file, "ARCH": "ofa_tiny",
            "PATCH_IMAGE_SIZE": "32", "SAMPLE_PATCH_NUM": "2", "MAX_EPOCH": "1", "EXTRA_ARGS": extra_args}


def test_script_continues_pretraining_from_an_original_checkpoint(data_dir, original_checkpoint, tmp_path):
    extra = " ".join(MODEL_ARGS + ["--code-image-size=32", "--max-update=2", "--log-format=json",
                                   "--log-interval=1", "--seed=3"])
    env = script_env(data_dir, tmp_path, str(original_checkpoint), extra)
    result = run(["bash", str(REPO / "run_scripts/pretraining/pretrain_ofa_base.sh")], env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"loaded checkpoint {original_checkpoint} (epoch" in result.stdout
    assert "@ 0 updates)" in result.stdout  # --reset-optimizer: the schedule starts again
    assert sorted(logged_updates(result.stdout)) == [1, 2]
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    final = load_checkpoint_to_cpu(str(tmp_path / "saved" / "ofa_tiny" / "checkpoint_last.pt"))
    start = load_checkpoint_to_cpu(str(original_checkpoint))
    assert final["cfg"].task._name == "unify_task" and final["optimizer_history"][-1]["num_updates"] == 2
    name = "encoder.embed_tokens.weight"  # two small steps away from the restored weights, not a new init
    assert (final["model"][name] - start["model"][name]).abs().max() < 0.05
    assert (tmp_path / "logs" / "ofa_tiny.log").read_text().count("train_inner") == 2


def dry_run(env: dict, script: str = "pretrain_ofa_large.sh") -> list:
    result = run(["bash", str(REPO / "run_scripts/pretraining" / script)], env={**env, "OFA_DRY_RUN": "1"})
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("python ")]
    return shlex.split(line)


def flag(argv: list, name: str):
    values = [a.split("=", 1)[1] if "=" in a else True for a in argv if a == name or a.startswith(name + "=")]
    return values[-1] if values else None


ORIGINAL_VALUES = {
    "--task": "unify_task", "--selected-cols": "0,1,2,3,4,5,6,7", "--text-selected-cols": "0,1",
    "--image-selected-cols": "0,1,2", "--detection-selected-cols": "0,1,2",
    "--criterion": "adjust_label_smoothed_cross_entropy", "--label-smoothing": "0.0", "--lr": "1e-4",
    "--max-epoch": "50", "--warmup-ratio": "0.01", "--batch-size": "4", "--update-freq": "1",
    "--resnet-drop-path-rate": "0.0", "--encoder-drop-path-rate": "0.1", "--decoder-drop-path-rate": "0.1",
    "--dropout": "0.1", "--attention-dropout": "0.0", "--max-src-length": "80", "--max-tgt-length": "30",
    "--num-bins": "1000", "--patch-image-size": "384", "--sample-patch-num": "196", "--max-image-size": "512",
    "--clip-norm": "5.0", "--weight-decay": "0.01", "--lr-scheduler": "polynomial_decay",
    "--keep-last-epochs": "15", "--save-interval-updates": "6000", "--disable-validation": True,
    "--reset-optimizer": True, "--reset-dataloader": True, "--reset-meters": True, "--scale-attn": True,
    "--add-type-embedding": True, "--disable-entangle": True,
}


def test_scripts_pass_the_original_flags(data_dir, tmp_path):
    env = {**script_env(data_dir, tmp_path, "", ""), "ARCH": "", "PATCH_IMAGE_SIZE": "", "SAMPLE_PATCH_NUM": "",
           "MAX_EPOCH": ""}
    for key in ("ARCH", "PATCH_IMAGE_SIZE", "SAMPLE_PATCH_NUM", "MAX_EPOCH", "RESTORE_FILE"):
        del env[key]
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for script, arch in (("pretrain_ofa_large.sh", "ofa_large"), ("pretrain_ofa_base.sh", "ofa_base")):
        (checkpoints / f"{arch}.pt").touch()
        argv = dry_run(env, script)
        assert argv[1] == str(REPO / "train.py") and argv[2] == str(data_dir / "vision_language_examples.tsv")
        for name, value in {**ORIGINAL_VALUES, "--arch": arch, "--restore-file": str(checkpoints / f"{arch}.pt"),
                            "--neg-sample-dir": str(data_dir / "negative_sample"),
                            "--save-dir": str(tmp_path / "saved" / arch)}.items():
            assert flag(argv, name) == value, (script, name)
        assert flag(argv, "--cpu") is True and flag(argv, "--fp16") is None  # no GPU here
    # an interrupted run resumes its own checkpoint instead of restoring the released one again
    (tmp_path / "saved" / "ofa_base" / "checkpoint_last.pt").touch()
    argv = dry_run(env, "pretrain_ofa_base.sh")
    assert flag(argv, "--restore-file") is None and flag(argv, "--reset-optimizer") is None
    # without the released checkpoint: from scratch, with a warning
    (checkpoints / "ofa_large.pt").unlink()
    result = run(["bash", str(REPO / "run_scripts/pretraining/pretrain_ofa_large.sh")], env={**env, "OFA_DRY_RUN": "1"})
    assert result.returncode == 0 and "--restore-file" not in result.stdout
    assert "ofa_large.pt not found" in result.stderr and "pretraining from scratch" in result.stderr
    # missing data: a clear error naming the file
    result = run(["bash", str(REPO / "run_scripts/pretraining/pretrain_ofa_base.sh")],
                 env={**env, "DATA_DIR": str(tmp_path / "nowhere")})
    assert result.returncode == 1
    assert f"error: data file not found: {tmp_path}/nowhere/vision_language_examples.tsv" in result.stderr
