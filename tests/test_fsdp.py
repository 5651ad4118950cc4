"""``--ddp-backend fully_sharded`` (FSDP2) under torchrun with two gloo ranks, against a data parallel (c10d) run of
the same command: half the bytes per rank, the same losses, checkpoints in the data parallel layout that
evaluate.py and a data parallel trainer load, a SIGKILLed run that resumes with the same losses, the same losses
with ``--checkpoint-activations``, and ``--amp`` close to ``--amp`` under c10d.

Six launches in all, shared by the tests through module-scoped fixtures: one c10d run; one FSDP run killed after
update 7, its checkpoint holding update 5; the same FSDP command again; the FSDP command with
``--checkpoint-activations`` killed after update 6; two short ``--amp`` runs (c10d and FSDP). One more small
launch checks the gradient scalers on sharded gradients."""
import json
import math
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

pytestmark = pytest.mark.slow  # torchrun launches of two ranks

UPDATES, SAVED_AT, KILLED_AT = 10, 5, 7
# --amp (bfloat16 autocast) under c10d and FSDP, 3 updates: the logged losses (3 decimals) differ by at most 0.001,
# the final weights' validation losses by 1.1e-6 (after 10 updates 3e-6; fp32 against --amp then: 7e-5)
AMP_LOGGED_TOLERANCE, AMP_VALID_TOLERANCE = 2e-3, 1e-4
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
def runs(caption_data, module_tmp_dir):  # noqa: F811
    ddp_dir, fsdp_dir = module_tmp_dir("ddp"), module_tmp_dir("fsdp")
    ddp = run(torchrun_command(caption_data, ddp_dir, "c10d", "--find-unused-parameters"))
    fsdp_command = torchrun_command(caption_data, fsdp_dir, "fully_sharded")
    killed = run_killed_after(fsdp_command, KILLED_AT)
    resumed = run(fsdp_command)
    return {"ddp": ddp, "killed": killed, "resumed": resumed, "ddp_dir": ddp_dir, "fsdp_dir": fsdp_dir,
            "data": caption_data}


AMP_UPDATES = 3


@pytest.fixture(scope="module")
def amp_runs(caption_data, module_tmp_dir):  # noqa: F811
    """``--amp`` (bfloat16 autocast on CPU) for a few updates, under c10d and under FSDP."""
    short = ("--amp", "--max-update", str(AMP_UPDATES))
    ddp_dir, fsdp_dir = module_tmp_dir("amp_ddp"), module_tmp_dir("amp_fsdp")
    return {"ddp": run(torchrun_command(caption_data, ddp_dir, "c10d", "--find-unused-parameters", *short)),
            "fsdp": run(torchrun_command(caption_data, fsdp_dir, "fully_sharded", *short)),
            "ddp_dir": ddp_dir, "fsdp_dir": fsdp_dir}


@pytest.fixture(scope="module")
def checkpointed_run(caption_data, module_tmp_dir):  # noqa: F811
    """The FSDP command of :func:`runs` with ``--checkpoint-activations``, killed once update 6 is logged (its
    checkpoint of update 5 written)."""
    save_dir = module_tmp_dir("fsdp_checkpointed")
    command = torchrun_command(caption_data, save_dir, "fully_sharded", "--checkpoint-activations")
    return {"log": run_killed_after(command, SAVED_AT + 1), "dir": save_dir}


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


def test_activation_checkpointing_keeps_the_fully_sharded_losses(runs, checkpointed_run):
    """Each unit's weights are gathered again for its recomputation in backward; losses and weights unchanged."""
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    checkpointed, plain = logged_updates(checkpointed_run["log"]), logged_updates(runs["killed"])
    assert sorted(checkpointed) == list(range(1, SAVED_AT + 2))
    for num_updates, stats in checkpointed.items():
        for name in ("loss", "nll_loss", "gnorm"):
            assert stats[name] == pytest.approx(plain[num_updates][name], abs=1e-5), (num_updates, name)
    name = f"checkpoint_2_{SAVED_AT}.pt"
    weights = load_checkpoint_to_cpu(str(checkpointed_run["dir"] / name))["model"]
    reference = load_checkpoint_to_cpu(str(runs["fsdp_dir"] / name))["model"]
    assert sorted(weights) == sorted(reference)
    for key, value in reference.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=1e-5, msg=key)


def test_amp_under_fsdp_trains_like_amp_under_data_parallel(amp_runs):
    """fp32 shards, bfloat16 autocast, the constant-scale gradient scaler; losses close to c10d's --amp."""
    for log in (amp_runs["ddp"], amp_runs["fsdp"]):
        assert "training precision: amp: bfloat16 autocast on cpu, fp32 weights, no loss scaling" in log
    assert "fully sharded over 2 ranks" in amp_runs["fsdp"]
    ddp, fsdp = logged_updates(amp_runs["ddp"]), logged_updates(amp_runs["fsdp"])
    assert sorted(fsdp) == sorted(ddp) == list(range(1, AMP_UPDATES + 1))
    for num_updates, stats in fsdp.items():
        assert stats["loss_scale"] == 1.0 and all(map(math.isfinite, stats.values())), stats
        for name in ("loss", "nll_loss", "gnorm"):
            assert stats[name] == pytest.approx(ddp[num_updates][name], abs=AMP_LOGGED_TOLERANCE), (num_updates, name)
    assert _valid_loss(amp_runs["fsdp_dir"] / "checkpoint_last.pt") == pytest.approx(
        _valid_loss(amp_runs["ddp_dir"] / "checkpoint_last.pt"), abs=AMP_VALID_TOLERANCE)


def overflow_on_one_rank() -> None:
    """Run by :func:`test_gradient_scalers_skip_an_overflow_of_one_rank_on_all_ranks` under torchrun: an inf in
    rank 1's gradient shard only; prints, per rank and scaler, whether the step was taken and the next scale."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from training.fsdp import clip_sharded_grad_norm_, local_tensor
    from utils import precision

    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (2,))
    for name, scaler in (("amp_bf16", precision.amp_grad_scaler("cpu", 128.0)),
                         ("dynamic_fp16", torch.amp.GradScaler("cpu", init_scale=128.0))):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        fully_shard(model, mesh=mesh)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [local_tensor(p).clone() for p in model.parameters()]
        scaler.scale(model(torch.ones(3, 4)).sum()).backward()
        if dist.get_rank() == 1:
            local_tensor(model[0].weight.grad)[0, 0] = float("inf")
        scaler.unscale_(optimizer)
        norm = clip_sharded_grad_norm_(list(model.parameters()), 1.0, dist.group.WORLD, torch.device("cpu"))
        scaler.step(optimizer)
        scaler.update()
        stepped = any(not torch.equal(local_tensor(p), b) for p, b in zip(model.parameters(), before))
        sys.stdout.write(json.dumps({"rank": dist.get_rank(), "scaler": name, "stepped": stepped,
                                     "finite_norm": bool(norm.isfinite()), "scale": scaler.get_scale()}) + "\n")
        sys.stdout.flush()
    dist.barrier()  # a rank that tears its group down while the other still talks to it aborts (SIGABRT) the other
    dist.destroy_process_group()


def test_gradient_scalers_skip_an_overflow_of_one_rank_on_all_ranks():
    """torch's GradScaler on FSDP2's DTensor gradients (what --amp uses under FSDP): DTensor's unscale all-reduces
    the inf check, so the rank whose shards are finite skips the step and backs off too."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]
    # both ranks print to one pipe: a report can land on the same line as the other rank's
    output = run([*launcher, __file__, "overflow-on-one-rank"])
    reports = [json.loads(report) for report in re.findall(r"\{[^{}]*\}", output)]
    assert len(reports) == 4, reports
    for report in reports:
        assert not report["stepped"] and not report["finite_norm"], report
        assert report["scale"] == (0.5 if report["scaler"] == "amp_bf16" else 64.0), report


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
    from training.fsdp import fsdp_mixed_precision

    for flags in ((), ("--amp",)):  # --amp: fp32 weights gathered, the forward autocast as without FSDP
        policy = fsdp_mixed_precision(training_cfg(*flags))
        assert policy.param_dtype is None and policy.reduce_dtype is None
    for flag, dtype in (("--bf16", torch.bfloat16), ("--fp16", torch.float16)):
        policy = fsdp_mixed_precision(training_cfg(flag))
        assert policy.param_dtype == dtype and policy.reduce_dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_fully_sharded_fp16_without_gpu_is_refused_naming_the_flag(runs):
    from fairseq import tasks

    from trainer import Trainer
    from training.precision import TrainingSetupError
    from utils.checkpoint_utils import load_checkpoint_to_cpu

    cfg = load_checkpoint_to_cpu(str(runs["fsdp_dir"] / "checkpoint_last.pt"))["cfg"]
    assert cfg.distributed_training.ddp_backend == "fully_sharded"
    with open_dict(cfg):
        cfg.common.fp16 = True
    task = tasks.setup_task(cfg.task)
    with pytest.raises(TrainingSetupError, match="^--fp16 needs a CUDA device"):
        Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="--fp16 under FSDP needs two CUDA devices")
def test_fp16_under_fsdp_on_cuda(runs, tmp_path):
    """float16 compute on fp32 shards with fairseq's dynamic loss scaler, on two GPUs (nccl): finite losses near
    the fp32 c10d run's."""
    command = [a for a in torchrun_command(runs["data"], tmp_path, "fully_sharded", "--fp16") if a != "--cpu"]
    log = run(command)
    assert "training precision: fp16 weights with fp32 master copies (loss scaling)" in log
    fp16, fp32 = logged_updates(log), logged_updates(runs["ddp"])
    assert sorted(fp16) == list(range(1, UPDATES + 1))
    for num_updates, stats in fp16.items():
        assert math.isfinite(stats["loss"]) and stats["loss_scale"] > 0, stats
        assert stats["loss"] == pytest.approx(fp32[num_updates]["loss"], abs=0.05), num_updates


@pytest.mark.parametrize("flags, message", [
    ((), "needs several processes"),
    (("--distributed-world-size", "2", "--store-ema"),
     r"--store-ema is not supported .*: drop --store-ema and the --ema-\* options, or train with --ddp-backend c10d"),
    (("--distributed-world-size", "2", "--zero-sharding", "os"), "--zero-sharding is not supported"),
])
def test_unsupported_fully_sharded_options_are_named(flags, message):
    from training.fsdp import check_fully_sharded_supported
    from training.precision import TrainingSetupError

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
    from training.fsdp import shard_model

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

    from training.fsdp import clip_sharded_grad_norm_, fsdp_units

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

    from training.fsdp import fsdp_mixed_precision

    plain, sharded = plain_and_sharded(one_rank_mesh, fsdp_mixed_precision(training_cfg("--bf16")))
    reference, logits = forward_backward(plain), forward_backward(sharded)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), reference, atol=0.03, rtol=0.03)
    grads = [[full(p.grad) for p in model.parameters() if p.grad is not None] for model in (plain, sharded)]
    assert {p.dtype for p in sharded.parameters()} == {g.dtype for g in grads[1]} == {torch.float32}
    gradients = [torch.cat([g.flatten() for g in model_grads]) for model_grads in grads]
    assert F.cosine_similarity(*gradients, dim=0) > 0.999


if __name__ == "__main__" and sys.argv[1:] == ["overflow-on-one-rank"]:
    overflow_on_one_rank()
