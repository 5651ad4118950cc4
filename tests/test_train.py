"""train.py end to end on CPU: a small caption run learns, resumes after SIGKILL with identical results, runs
under torchrun (gloo), refuses corrupt checkpoints; the warmup-ratio schedule and EMA against their formulas."""
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

REPO = Path(__file__).resolve().parents[1]
TRAIN_ROWS, BATCH_SIZE, EPOCHS, WARMUP_RATIO, LR = 48, 8, 3, 0.25, 1e-3
UPDATES = EPOCHS * math.ceil(TRAIN_ROWS / BATCH_SIZE)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def caption_data(tmp_path_factory) -> str:
    """``train,valid`` TSVs of the bundled tiny caption benchmark (48 training rows, 8 validation rows)."""
    from dataset.make_tiny_dataset import make_tiny_dataset

    folder = tmp_path_factory.mktemp("caption")
    files = make_tiny_dataset(str(folder / "tiny"), seed=0, tasks=["caption"], image_size=48)["caption"]
    train, valid = folder / "train.tsv", folder / "valid.tsv"
    train.write_text("".join(Path(files["train"]).read_text().splitlines(keepends=True)[:TRAIN_ROWS]))
    valid.write_text("".join(Path(files["valid"]).read_text().splitlines(keepends=True)[:8]))
    return f"{train},{valid}"


def train_args(data: str, save_dir: Path, *extra: str) -> list:
    """An ``ofa_tiny``-shaped caption run shrunk to CPU-test size, with the original's flags."""
    return [
        data, "--user-dir", str(REPO), "--task", "caption", "--arch", "ofa_tiny",
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-08", "--clip-norm", "1.0",
        "--lr-scheduler", "polynomial_decay", "--lr", str(LR), "--warmup-ratio", str(WARMUP_RATIO),
        "--max-epoch", str(EPOCHS), "--batch-size", str(BATCH_SIZE), "--update-freq", "1",
        "--selected-cols", "0,4,2", "--patch-image-size", "32", "--max-src-length", "20", "--max-tgt-length", "12",
        "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "64", "--decoder-embed-dim", "64",
        "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
        "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--resnet-type", "resnet18",
        "--num-workers", "0", "--cpu", "--seed", "3", "--log-format", "json", "--log-interval", "1",
        "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--disable-validation", *extra,
    ]


def run_train(args: list, launcher: tuple = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, *launcher, str(REPO / "train.py"), *args]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def logged_updates(stdout: str) -> dict:
    """``num_updates -> {loss, lr, ...}`` from the ``train_inner`` lines of a ``--log-format json`` log."""
    updates = {}
    for line in stdout.splitlines():
        if "| train_inner |" in line:
            stats = json.loads(line.split("| train_inner | ", 1)[1])
            updates[int(stats["num_updates"])] = {k: float(v) for k, v in stats.items() if k != "epoch"}
    return updates


def expected_lr(num_updates: int) -> float:
    """polynomial_decay with --warmup-ratio: linear warmup over int(total * ratio) updates, then linear decay."""
    warmup = int(UPDATES * WARMUP_RATIO)
    if num_updates <= warmup:
        return LR * num_updates / warmup
    return LR * max(0.0, 1 - (num_updates - warmup) / (UPDATES - warmup))


EMA_ARGS = ("--store-ema", "--ema-fp32", "--ema-decay", "0.9", "--save-interval-updates", "4")


@pytest.fixture(scope="module")
def uninterrupted_run(caption_data, module_tmp_dir):
    save_dir = module_tmp_dir("uninterrupted")
    result = run_train(train_args(caption_data, save_dir, *EMA_ARGS))
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir, logged_updates(result.stdout)


@pytest.mark.slow
def test_small_run_learns_with_the_warmup_ratio_schedule(uninterrupted_run):
    save_dir, updates = uninterrupted_run
    assert sorted(updates) == list(range(1, UPDATES + 1))
    losses = [updates[u]["loss"] for u in sorted(updates)]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses
    for num_updates, stats in updates.items():
        assert stats["lr"] == pytest.approx(expected_lr(num_updates), rel=1e-5, abs=1e-12), num_updates
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    state = load_checkpoint_to_cpu(str(save_dir / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == UPDATES
    ema = state["extra_state"]["ema"]
    # integer relative-position tables are copied into the EMA, not averaged (fairseq's EMA crashes on them)
    assert ema["encoder.token_rp_bucket"].dtype == torch.int64
    assert torch.equal(ema["encoder.token_rp_bucket"], state["model"]["encoder.token_rp_bucket"])
    assert not torch.equal(ema["decoder.layers.0.fc1.weight"], state["model"]["decoder.layers.0.fc1.weight"])


@pytest.mark.slow
def test_sigkill_and_rerun_gives_the_same_training(caption_data, uninterrupted_run, tmp_path):
    reference_dir, reference = uninterrupted_run
    args = train_args(caption_data, tmp_path, *EMA_ARGS)
    killed_at = 10  # mid-epoch 2; the last checkpoint then holds update 8
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if "| train_inner |" in line and json.loads(line.split("| train_inner | ", 1)[1])["num_updates"] == str(
                killed_at):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    resumed = run_train(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"loaded checkpoint .*checkpoint_last\.pt \(epoch 2 @ 8 updates\)", resumed.stdout)
    updates = logged_updates(resumed.stdout)
    assert sorted(updates) == list(range(9, UPDATES + 1))
    for num_updates, stats in updates.items():
        assert stats["loss"] == reference[num_updates]["loss"], num_updates
        assert stats["lr"] == pytest.approx(expected_lr(num_updates), rel=1e-5, abs=1e-12), num_updates

    from utils.checkpoint_utils import torch_load_safely

    final = torch_load_safely(str(tmp_path / "checkpoint_last.pt"))
    expected = torch_load_safely(str(reference_dir / "checkpoint_last.pt"))
    for entry in ("model", "ema", "ema_fp32_params"):
        got = final["model"] if entry == "model" else final["extra_state"][entry]
        want = expected["model"] if entry == "model" else expected["extra_state"][entry]
        for name, tensor in want.items():
            assert torch.equal(got[name], tensor), (entry, name)
    assert final["extra_state"]["train_iterator"] == expected["extra_state"]["train_iterator"]


@pytest.mark.slow
def test_corrupt_last_checkpoint_is_reported_and_kept(caption_data, uninterrupted_run, tmp_path):
    reference_dir, _ = uninterrupted_run
    corrupt = tmp_path / "checkpoint_last.pt"
    corrupt.write_bytes((reference_dir / "checkpoint_last.pt").read_bytes()[: 1 << 20])
    before = corrupt.read_bytes()
    result = run_train(train_args(caption_data, tmp_path, *EMA_ARGS))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("train.py: error: ") and str(corrupt) in last_line
    assert "truncated or corrupt" in last_line
    # nothing written but the save dir's lock and train.py's config/model dump (train_details.log)
    assert corrupt.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_last.pt", "train.lock", "train_details.log"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_torchrun_on_cpu(caption_data, tmp_path):
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port()))
    result = run_train(train_args(caption_data, tmp_path, "--max-update", "2", "--find-unused-parameters",
                                  "--tensorboard-logdir", str(tmp_path / "tb")),
                       launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    updates = logged_updates(result.stdout)
    assert sorted(updates) == [1, 2]
    # each rank reads its own half of the file: both ranks' sentences are summed in every update
    assert all(stats["nsentences"] == 2 * BATCH_SIZE for stats in updates.values())
    assert "slice_id 0 row count 24 total row count 48" in result.stdout
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    state = load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))
    assert state["cfg"].distributed_training.distributed_world_size == 2
    assert state["cfg"].distributed_training.distributed_backend == "gloo"
    assert state["optimizer_history"][-1]["num_updates"] == 2
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tb" / "train_inner"))


@pytest.mark.slow
def test_ema_init_options(uninterrupted_run):
    """--use-ema-weights-to-init-param loads the stored EMA into the model; --use-latest-weights-to-init-ema
    restarts the EMA from the model weights."""
    from fairseq import tasks

    from trainer import Trainer
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    path = str(uninterrupted_run[0] / "checkpoint_last.pt")
    state = load_checkpoint_to_cpu(path)
    cfg = state["cfg"]
    ema_fp32 = state["extra_state"]["ema_fp32_params"]
    for ema_to_model, latest_to_ema in ((True, False), (False, True)):
        with open_dict(cfg):
            cfg.checkpoint.use_ema_weights_to_init_param = ema_to_model
            cfg.checkpoint.use_latest_weights_to_init_ema = latest_to_ema
        task = tasks.setup_task(cfg.task)
        trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
        trainer.load_checkpoint(path, reset_optimizer=True)
        model, ema = trainer.get_model().state_dict(), trainer.ema.get_model().state_dict()
        name = "decoder.layers.0.fc1.weight"
        assert torch.equal(model[name], ema_fp32[name] if ema_to_model else state["model"][name])
        assert torch.equal(ema[name], state["model"][name] if latest_to_ema else state["extra_state"]["ema"][name])


# ---- in-process: schedule and EMA formulas, resume positions, device checks ------------------------------------


def build_scheduler(*flags: str):
    """The ``--lr-scheduler`` fairseq builds from command-line flags, on a one-parameter Adam."""
    from fairseq import optim, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.optim.lr_scheduler import build_lr_scheduler

    from tasks.loading import register_ofa_components

    register_ofa_components()
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["data", "--task", "caption", "--arch", "ofa_tiny", "--optimizer",
                                                "adam", "--lr", str(LR), *flags])
    cfg = convert_namespace_to_omegaconf(args)
    optimizer = optim.build_optimizer(cfg.optimizer, [torch.nn.Parameter(torch.zeros(1))])
    return build_lr_scheduler(cfg.lr_scheduler, optimizer)


def test_warmup_ratio_schedule_and_its_reinit_after_resume():
    scheduler = build_scheduler("--lr-scheduler", "polynomial_decay", "--warmup-ratio", str(WARMUP_RATIO),
                                "--max-epoch", str(EPOCHS))
    assert type(scheduler).__name__ == "PolynomialDecayWithWarmupRatio"
    scheduler.reinit(UPDATES, 0)
    assert scheduler.optimizer.get_lr() == pytest.approx(LR / int(UPDATES * WARMUP_RATIO))
    assert [scheduler.step_update(n) for n in range(UPDATES + 2)] == pytest.approx(
        [expected_lr(n) for n in range(UPDATES + 2)])
    for done in (2, 9):  # resumed inside and after the warmup
        resumed = build_scheduler("--lr-scheduler", "polynomial_decay", "--warmup-ratio", str(WARMUP_RATIO),
                                  "--max-epoch", str(EPOCHS))
        resumed.reinit(UPDATES, done)
        assert resumed.warmup_factor == pytest.approx(min(1.0, done / int(UPDATES * WARMUP_RATIO)))
        assert resumed.optimizer.get_lr() == pytest.approx(expected_lr(done))


def test_polynomial_decay_without_warmup_ratio_is_fairseqs():
    """Defaults to --max-update (fairseq's own config turns that default into null and fails to parse)."""
    scheduler = build_scheduler("--lr-scheduler", "polynomial_decay", "--warmup-updates", "2", "--max-update", "10",
                                "--end-learning-rate", "1e-5", "--power", "2")
    lrs = [scheduler.step_update(n) for n in range(12)]
    expected = [LR * n / 2 if n <= 2 else (LR - 1e-5) * (1 - (n - 2) / 8) ** 2 + 1e-5 for n in range(10)]
    assert lrs == pytest.approx(expected + [1e-5, 1e-5])


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.register_buffer("rp_bucket", torch.arange(4))


def make_trainer(model, *flags):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import tasks  # noqa: F401
    from trainer import Trainer

    args = options.parse_args_and_arch(options.get_training_parser(), [
        "data", "--task", "caption", "--arch", "ofa_tiny", "--optimizer", "adam", "--cpu", *flags])
    return Trainer(convert_namespace_to_omegaconf(args), None, model, torch.nn.Module())


@pytest.mark.parametrize("fp32", [False, True])
def test_ema_matches_closed_form_and_copies_integer_buffers(fp32):
    decay, start = 0.8, 2
    model = TinyModel()
    trainer = make_trainer(model, "--store-ema", "--ema-decay", str(decay), "--ema-start-update", str(start),
                           *(["--ema-fp32"] if fp32 else []))
    values = [0.5, 2.0, -1.0, 3.0, 4.0, 1.5]  # weights after updates 0 (initial), 1, 2, ...
    with torch.no_grad():
        model.linear.weight.fill_(values[0])
    trainer._build_ema()  # the EMA starts from the initial weights
    for num_updates, value in enumerate(values[1:], start=1):
        with torch.no_grad():
            model.linear.weight.fill_(value)
            model.rp_bucket.add_(1)
        trainer.ema.step(model, num_updates)
    # e_0 = w_0; e_n = w_n before --ema-start-update, else decay * e_{n-1} + (1 - decay) * w_n
    expected = values[start - 1]
    for value in values[start:]:
        expected = decay * expected + (1 - decay) * value
    ema_state = trainer.ema.fp32_params if fp32 else trainer.ema.get_model().state_dict()
    assert torch.allclose(ema_state["linear.weight"], torch.full((2, 2), expected))
    assert torch.equal(trainer.ema.get_model().rp_bucket, model.rp_bucket)
    assert trainer.ema.get_model().rp_bucket.dtype == torch.int64


def test_fp16_without_gpu_is_refused():
    from training.precision import TrainingSetupError, check_precision_supported

    cfg = OmegaConf.create({"common": {"cpu": True, "fp16": True, "memory_efficient_fp16": False, "amp": False,
                                       "bf16": False, "memory_efficient_bf16": False}})
    with pytest.raises(TrainingSetupError, match="--fp16 needs a CUDA device"):
        check_precision_supported(cfg)


def test_resumed_epoch_reads_each_row_once(caption_data):
    """Rows are read by index: fast-forwarding the batch iterator continues at the first unread row."""
    from fairseq import tasks

    from tasks.loading import register_ofa_components

    register_ofa_components()
    cfg = OmegaConf.create({"_name": "caption", "data": caption_data, "selected_cols": "0,4,2",
                            "patch_image_size": 32, "max_src_length": 20, "max_tgt_length": 12})

    def epoch_iterator():
        task = tasks.setup_task(cfg)
        task.load_dataset("train", epoch=2)
        return task.get_batch_iterator(task.dataset("train"), max_sentences=BATCH_SIZE, seed=3, epoch=2)

    first = epoch_iterator()
    itr = first.next_epoch_itr(shuffle=True)
    consumed = [next(itr)["id"].tolist() for _ in range(2)]
    state = first.state_dict()
    second = epoch_iterator()
    second.load_state_dict(state)
    rest = [batch["id"].tolist() for batch in second.next_epoch_itr(shuffle=True)]
    seen = sum(consumed + rest, [])
    assert sorted(seen) == sorted(set(seen)) and len(seen) == TRAIN_ROWS


def test_checkpoint_file_rules(tmp_path):
    """--keep-last-epochs, --keep-best-checkpoints with a maximised --best-checkpoint-metric, checkpoint_best/last."""
    from fairseq.data import iterators
    from torch.utils.data import TensorDataset

    from utils import checkpoint_utils

    trainer = make_trainer(TinyModel(), "--save-dir", str(tmp_path), "--keep-last-epochs", "2",
                           "--keep-best-checkpoints", "2", "--best-checkpoint-metric", "acc",
                           "--maximize-best-checkpoint-metric")
    if hasattr(checkpoint_utils.save_checkpoint, "best"):
        del checkpoint_utils.save_checkpoint.best
    scores = {1: 0.1, 2: 0.5, 3: 0.3, 4: 0.4}
    best_saved_at = {}
    for epoch, score in scores.items():
        epoch_itr = iterators.EpochBatchIterator(dataset=TensorDataset(torch.arange(2)), collate_fn=list,
                                                 batch_sampler=[[0], [1]], epoch=epoch)
        list(epoch_itr.next_epoch_itr(shuffle=False))
        checkpoint_utils.save_checkpoint(trainer.cfg.checkpoint, trainer, epoch_itr, score)
        if score == max(list(scores.values())[:epoch]):
            best_saved_at[epoch] = (tmp_path / "checkpoint_best.pt").read_bytes()
    files = sorted(os.listdir(tmp_path))
    assert [f for f in files if re.fullmatch(r"checkpoint\d+\.pt", f)] == ["checkpoint3.pt", "checkpoint4.pt"]
    best_files = [f for f in files if f.startswith("checkpoint.best_acc_")]
    assert sorted(f[len("checkpoint.best_acc_"):][:5] for f in best_files) == ["0.400", "0.500"]
    assert "checkpoint_last.pt" in files and checkpoint_utils.save_checkpoint.best == 0.5
    assert (tmp_path / "checkpoint_best.pt").read_bytes() == best_saved_at[2]
    last = checkpoint_utils.torch_load_safely(str(tmp_path / "checkpoint_last.pt"))
    assert last["extra_state"]["best"] == 0.5
    # saved after the end of epoch 4: resuming starts epoch 5 at its first batch
    assert last["extra_state"]["train_iterator"]["epoch"] == 5
    assert last["extra_state"]["train_iterator"]["iterations_in_epoch"] == 0


def test_total_updates_with_per_epoch_update_freq():
    """sum over epochs of ceil(batches per epoch / update freq of that epoch); the last freq repeats."""
    import train

    cfg = OmegaConf.create({"optimization": {"max_epoch": 4, "update_freq": [2, 4]}})
    assert train.total_updates(cfg, 6) == 3 + 2 + 2 + 2


@pytest.mark.slow
def test_finetune_from_model_patience_and_keep_interval_updates(caption_data, uninterrupted_run, tmp_path):
    """--finetune-from-model starts from the given weights with a fresh optimizer (update 1, epoch 1); --patience 1
    stops at the first validation that does not improve (lr 1e-30: the loss, logged to 3 decimals, cannot);
    --keep-interval-updates 1 keeps
    only the newest checkpoint_<epoch>_<updates>.pt."""
    source = uninterrupted_run[0] / "checkpoint_last.pt"
    args = [arg for arg in train_args(caption_data, tmp_path) if arg != "--disable-validation"]
    result = run_train([*args, "--lr", "1e-30", "--finetune-from-model", str(source), "--patience", "1",
                        "--save-interval-updates", "2", "--keep-interval-updates", "1",
                        "--validate-interval-updates", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"finetuning from {source}" in result.stdout + result.stderr
    assert sorted(logged_updates(result.stdout)) == [1, 2, 3, 4]  # validated at 2 (best) and 4 (not better): stop
    assert "early stop since valid performance hasn't improved for last 1 runs" in result.stdout + result.stderr
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith(".pt")) == [
        "checkpoint_1_4.pt", "checkpoint_best.pt", "checkpoint_last.pt"]
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    final, start = load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt")), load_checkpoint_to_cpu(str(source))
    assert final["optimizer_history"][-1]["num_updates"] == 4
    for name, tensor in start["model"].items():  # lr 1e-30 keeps the loaded weights (batch-norm statistics move)
        if "running_" in name or "num_batches_tracked" in name:
            continue
        assert torch.allclose(final["model"][name], tensor, rtol=0, atol=1e-20), name
