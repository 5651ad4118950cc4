"""``--ddp-backend fully_sharded`` (FSDP2) under torchrun with two gloo ranks, against a data parallel (c10d) run of
the same command: half the bytes per rank, the same losses, checkpoints in the data parallel layout that
evaluate.py and a data parallel trainer load, and a SIGKILLed run that resumes with the same losses.

Three launches in all (one c10d run; one FSDP run killed after update 7, its checkpoint holding update 5; the
same FSDP command again), shared by the tests through a module-scoped fixture."""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from test_train import ENV, REPO, _free_port, caption_data, logged_updates, train_args  # noqa: F401 (fixture)

UPDATES, SAVED_AT, KILLED_AT = 10, 5, 7
# 2 x 4 sentences per rank and update; validation (with beam search: the FSDP root's weights gathered outside its
# forward) at the save and at the end
RUN_ARGS = ("--batch-size", "4", "--update-freq", "2", "--max-epoch", "4", "--max-update", str(UPDATES),
            "--save-interval-updates", str(SAVED_AT),
            "--save-interval", "100", "--validate-interval", "100", "--eval-cider",
            "--eval-args", '{"beam":2,"max_len_b":6}', "--best-checkpoint-metric", "cider",
            "--maximize-best-checkpoint-metric")
HOLDS = re.compile(r"this rank holds (\d+) parameter, (\d+) gradient and (\d+) optimizer-state bytes")


def torchrun_command(data: str, save_dir: Path, backend: str, *extra: str) -> list:
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]
    args = [a for a in train_args(data, save_dir, "--ddp-backend", backend, *RUN_ARGS, *extra)
            if a != "--disable-validation"]
    return [sys.executable, *launcher, str(REPO / "train.py"), *args]


def run(command: list) -> str:
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    errors = [line for line in result.stderr.splitlines() if "Error" in line]  # torchrun's traceback buries them
    assert result.returncode == 0, "\n".join(errors[:5]) + result.stdout[-2000:]
    return result.stdout


def process_tree(pid: int) -> list:
    """``pid`` and its descendants (torchrun starts each rank in a session of its own: no process group)."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return [pid, *(p for child in children for p in process_tree(child))]


def run_killed_after(command: list, num_updates: int) -> str:
    """Start ``command`` and SIGKILL the launcher and both ranks once ``num_updates`` is logged."""
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "| train_inner |" in line and json.loads(line.split("| train_inner | ", 1)[1])["num_updates"] == str(
                num_updates):
            tree = process_tree(process.pid)
            assert len(tree) >= 3, tree  # the launcher and two ranks
            for pid in tree:
                os.kill(pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(lines)[-3000:]
    return "".join(lines)


@pytest.fixture(scope="module")
def runs(caption_data, tmp_path_factory):  # noqa: F811
    ddp_dir, fsdp_dir = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("fsdp")
    ddp = run(torchrun_command(caption_data, ddp_dir, "c10d", "--find-unused-parameters"))
    fsdp_command = torchrun_command(caption_data, fsdp_dir, "fully_sharded")
    killed = run_killed_after(fsdp_command, KILLED_AT)
    resumed = run(fsdp_command)
    return {"ddp": ddp, "killed": killed, "resumed": resumed, "ddp_dir": ddp_dir, "fsdp_dir": fsdp_dir,
            "data": caption_data}


def test_each_rank_holds_half_the_bytes_of_data_parallel(runs):
    ddp = [int(n) for n in HOLDS.search(runs["ddp"]).groups()]
    fsdp = [int(n) for n in HOLDS.search(runs["killed"]).groups()]
    assert "fully sharded over 2 ranks" in runs["killed"]
    for what, full, shard in zip(("parameter", "gradient", "optimizer-state"), ddp, fsdp):
        assert 0.45 < shard / full < 0.55, (what, shard, full)


def test_losses_equal_data_parallel_and_resume_after_sigkill(runs):
    ddp, killed, resumed = (logged_updates(runs[name]) for name in ("ddp", "killed", "resumed"))
    assert sorted(ddp) == list(range(1, UPDATES + 1)) and sorted(killed) == list(range(1, KILLED_AT + 1))
    loaded = re.findall(r"loaded checkpoint .*", runs["resumed"])
    assert len(loaded) == 1 and re.search(rf"checkpoint_last\.pt \(epoch 2 @ {SAVED_AT} updates\)", loaded[0]), loaded
    assert sorted(resumed) == list(range(SAVED_AT + 1, UPDATES + 1))
    for num_updates, stats in (killed | resumed).items():
        for name in ("loss", "nll_loss", "gnorm", "lr"):
            assert stats[name] == ddp[num_updates][name], (num_updates, name)
    for num_updates in range(SAVED_AT + 1, KILLED_AT + 1):  # trained twice: before the kill and after the resume
        assert resumed[num_updates]["loss"] == killed[num_updates]["loss"]


def _valid_loss(path: Path) -> float:
    """The criterion's loss per target token of the final weights on the validation rows, in full precision."""
    from tasks.loading import load_model_ensemble_and_task

    [model], cfg, task = load_model_ensemble_and_task([str(path)])
    model.eval()
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        loss, sample_size, _ = task.build_criterion(cfg.criterion)(model, batch)
    return loss.item() / sample_size


def test_checkpoints_have_the_data_parallel_layout_and_predict_alike(runs, tmp_path):
    import evaluate
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    ddp_path, fsdp_path = runs["ddp_dir"] / "checkpoint_last.pt", runs["fsdp_dir"] / "checkpoint_last.pt"
    assert (runs["fsdp_dir"] / "checkpoint_best.pt").is_file()
    ddp, fsdp = load_checkpoint_to_cpu(str(ddp_path)), load_checkpoint_to_cpu(str(fsdp_path))
    assert sorted(fsdp) == sorted(ddp)
    assert fsdp["optimizer_history"][-1]["num_updates"] == UPDATES
    assert {k: (v.shape, v.dtype) for k, v in fsdp["model"].items()} == {
        k: (v.shape, v.dtype) for k, v in ddp["model"].items()}
    ddp_optimizer, fsdp_optimizer = ddp["last_optimizer_state"], fsdp["last_optimizer_state"]
    assert fsdp_optimizer["param_groups"] == ddp_optimizer["param_groups"]
    for index, entry in ddp_optimizer["state"].items():
        assert type(fsdp_optimizer["state"][index]["exp_avg"]) is torch.Tensor
        assert fsdp_optimizer["state"][index]["exp_avg"].shape == entry["exp_avg"].shape
    assert fsdp["extra_state"]["train_iterator"] == ddp["extra_state"]["train_iterator"]
    assert _valid_loss(fsdp_path) == pytest.approx(_valid_loss(ddp_path), abs=1e-5)

    predictions = {}
    for name, path in (("ddp", ddp_path), ("fsdp", fsdp_path)):
        valid_tsv = runs["data"].split(",")[1]
        overrides = repr({"data": valid_tsv, "bpe_dir": str(REPO / "utils" / "BPE"), "eval_cider": False})
        evaluate.cli_main([valid_tsv, f"--path={path}", f"--user-dir={REPO}", "--task=caption", "--batch-size=4",
                           "--gen-subset=valid", f"--results-path={tmp_path / name}", "--beam=2", "--max-len-b=6",
                           "--cpu", "--num-workers=0", f"--model-overrides={overrides}"])
        predictions[name] = json.loads((tmp_path / name / "valid_predict.json").read_text())
    assert len(predictions["fsdp"]) == 8 and predictions["fsdp"] == predictions["ddp"]


def test_fully_sharded_checkpoint_loads_into_a_data_parallel_trainer(runs):
    from fairseq import tasks

    from trainer import Trainer
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    path = str(runs["fsdp_dir"] / "checkpoint_last.pt")
    state = load_checkpoint_to_cpu(path)
    cfg = state["cfg"]
    with open_dict(cfg):
        cfg.distributed_training.ddp_backend = "c10d"
        cfg.distributed_training.distributed_world_size = 1
    task = tasks.setup_task(cfg.task)
    trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
    trainer.load_checkpoint(path)
    assert trainer.get_num_updates() == UPDATES
    name = "decoder.layers.0.fc1.weight"
    assert torch.equal(trainer.get_model().state_dict()[name], state["model"][name])
    index = [n for n, p in trainer.get_model().named_parameters() if p.requires_grad].index(name)
    assert torch.equal(trainer.optimizer.optimizer.state_dict()["state"][index]["exp_avg"],
                       state["last_optimizer_state"]["state"][index]["exp_avg"])


# ---- in-process: precision policy and refused options ------------------------------------------------------------


def training_cfg(*flags: str):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import tasks  # noqa: F401

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["data", "--task", "caption", "--arch", "ofa_tiny", "--optimizer",
                                                "adam", "--ddp-backend", "fully_sharded", *flags])
    return convert_namespace_to_omegaconf(args)


def test_precision_flags_map_to_the_fsdp_policy():
    from trainer import TrainingSetupError, fsdp_mixed_precision

    fp32 = fsdp_mixed_precision(training_cfg())
    assert fp32.param_dtype is None and fp32.reduce_dtype is None
    bf16 = fsdp_mixed_precision(training_cfg("--bf16"))
    assert bf16.param_dtype == torch.bfloat16 and bf16.reduce_dtype == torch.float32
    for flag in ("--fp16", "--amp"):
        with pytest.raises(TrainingSetupError, match="fully_sharded trains in fp32 or with --bf16"):
            fsdp_mixed_precision(training_cfg(flag))


@pytest.mark.parametrize("flags, message", [
    ((), "needs several processes"),
    (("--distributed-world-size", "2", "--store-ema"), "--store-ema is not supported"),
    (("--distributed-world-size", "2", "--zero-sharding", "os"), "--zero-sharding is not supported"),
])
def test_unsupported_fully_sharded_options_are_named(flags, message):
    from trainer import TrainingSetupError, check_fully_sharded_supported

    with pytest.raises(TrainingSetupError, match=message):
        check_fully_sharded_supported(training_cfg(*flags))


# ---- in-process, one rank: what FSDP2 units do to parameter-efficient, frozen and bf16 models -------------------

@pytest.fixture
def one_rank_mesh():
    """A one-rank gloo group in this process (``fully_shard`` needs a device mesh), destroyed afterwards."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield init_device_mesh("cpu", (1,))
    dist.destroy_process_group()


def plain_and_sharded(mesh, mp_policy, **options):
    """A small OFA model (2+2 layers, ResNet) and a copy sharded with ``mp_policy``, both in training mode."""
    import copy

    from models.ofa import build_ofa_model
    from trainer import shard_model

    torch.manual_seed(0)
    plain = build_ofa_model("ofa_tiny", encoder_embed_dim=64, decoder_embed_dim=64, encoder_ffn_embed_dim=128,
                            decoder_ffn_embed_dim=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                            decoder_attention_heads=4, resnet_type="resnet18", **options).train()
    sharded = copy.deepcopy(plain)
    shard_model(sharded, mesh, mp_policy)
    return plain, sharded


def forward_backward(model) -> torch.Tensor:
    """Logits of a fixed two-sample batch (same dropout masks every call), after a backward pass of a toy loss."""
    src = torch.randint(4, 1000, (2, 6), generator=torch.Generator().manual_seed(0))
    prev = torch.randint(4, 1000, (2, 5), generator=torch.Generator().manual_seed(1))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    logits, _ = model(src_tokens=src, src_lengths=torch.tensor([6, 6]), prev_output_tokens=prev,
                      patch_images=images, patch_masks=torch.tensor([True, False]))
    (logits.float().logsumexp(-1).mean() - logits.float()[..., 5].mean()).backward()
    return logits.detach()


def full(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


@pytest.mark.parametrize("options", [
    dict(encoder_prompt=True, decoder_prompt=True, encoder_prompt_length=5, decoder_prompt_length=3, adapter=True,
         adapter_dim=8),
    dict(bitfit=True), dict(freeze_encoder=True, freeze_resnet=True),
], ids=["prompts-adapters", "bitfit", "frozen-encoder"])
def test_sharded_units_train_like_the_plain_model(options, one_rank_mesh):
    """Frozen and trained parameters mixed inside units; the clipped update equals the unsharded model's."""
    import torch.distributed as dist
    from torch.distributed.fsdp import MixedPrecisionPolicy
    from torch.distributed.tensor import DTensor

    from trainer import clip_sharded_grad_norm_, fsdp_units

    plain, sharded = plain_and_sharded(one_rank_mesh, MixedPrecisionPolicy(), **options)
    assert len(fsdp_units(sharded)) == 1 + 2 + 2 and all(isinstance(p, DTensor) for p in sharded.parameters())
    norms = []
    for model in (plain, sharded):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-3)
        forward_backward(model)
        if model is plain:
            norms.append(torch.nn.utils.clip_grad_norm_(params, 0.1))
        else:
            norms.append(clip_sharded_grad_norm_(params, 0.1, dist.group.WORLD, torch.device("cpu")))
        optimizer.step()
    torch.testing.assert_close(norms[1], norms[0])
    after = {name: full(value) for name, value in sharded.state_dict().items()}
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(after[name], value, rtol=1e-6, atol=1e-7, msg=name)


def test_bf16_policy_computes_in_bfloat16_on_fp32_shards(one_rank_mesh):
    """--bf16: the layers compute in bfloat16, the ResNet (BatchNorm statistics are fp32) in fp32; weights and
    gradients stay fp32 and the gradients point where the fp32 model's do."""
    import torch.nn.functional as F

    from trainer import fsdp_mixed_precision

    plain, sharded = plain_and_sharded(one_rank_mesh, fsdp_mixed_precision(training_cfg("--bf16")))
    reference, logits = forward_backward(plain), forward_backward(sharded)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), reference, atol=0.03, rtol=0.03)
    grads = [[full(p.grad) for p in model.parameters() if p.grad is not None] for model in (plain, sharded)]
    assert {p.dtype for p in sharded.parameters()} == {g.dtype for g in grads[1]} == {torch.float32}
    gradients = [torch.cat([g.flatten() for g in model_grads]) for model_grads in grads]
    assert F.cosine_similarity(*gradients, dim=0) > 0.999
