"""``--update-freq 2`` on two ranks against one rank with four times the batch, a SIGKILL of one rank, the save-dir
lock of a multi-rank run, and resumes on another world size; one chain of launches on 16 caption rows, one update
per epoch (16 rows: 1 rank x 1 batch of 16, or 2 ranks x 2 batches of 4), so every run sees the same rows in
every update:

    reference  1 rank, --batch-size 16, 6 epochs (checkpoint2.pt kept)
    ddp        2 ranks, c10d, --batch-size 4 --update-freq 2; rank 1 SIGKILLed once update 3 is logged,
               then the same command again: it resumes from checkpoint_last.pt and runs to update 6
    fsdp       2 ranks, fully_sharded --checkpoint-activations, from the reference's checkpoint2.pt to update 4
    one        1 rank from the fsdp run's checkpoint_last.pt (update 4) to update 6

No dropout, frozen BatchNorm: the losses depend on the rows of an update, not on how they are split.
"""
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from launch import Launch, head, losses, process_tree, run, train_command

EPOCHS = 6
COMMON = ("--max-epoch", str(EPOCHS), "--disable-validation")
ONE_RANK = ("--batch-size", "16", "--update-freq", "1")
TWO_RANKS = ("--batch-size", "4", "--update-freq", "2")
KILLED_AT = 3
EXIT_BOUND = 60  # seconds for the surviving rank and torchrun to go after the kill (they take about one)


def rank_pids(launch: Launch) -> dict:
    """``RANK -> pid`` of the workers torchrun started."""
    ranks = {}
    for pid in process_tree(launch.process.pid)[1:]:
        environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
                       if "=" in item)
        if "RANK" in environ:
            ranks[int(environ["RANK"])] = pid
    return ranks


@pytest.fixture(scope="module")
def chain(tiny, tmp_path_factory):
    from utils.checkpoint_utils import CheckpointError, prepare_save_dir

    folder = tmp_path_factory.mktemp("chain")
    train = head(tiny["caption"]["train"], 16, folder / "train.tsv")
    valid = head(tiny["caption"]["valid"], 4, folder / "valid.tsv")
    data = f"{train},{valid}"
    saves = {name: folder / name for name in ("reference", "ddp", "fsdp", "one")}
    result = {"saves": saves}
    result["reference"] = run(train_command(1, data, saves["reference"], "caption", *ONE_RANK, *COMMON))

    ddp = train_command(2, data, saves["ddp"], "caption", *TWO_RANKS, *COMMON, "--no-epoch-checkpoints",
                        "--ddp-backend", "c10d", "--find-unused-parameters")
    killed = Launch(ddp)
    killed.wait_for(f'"num_updates": "{KILLED_AT}"')
    ranks = rank_pids(killed)
    try:  # a second run on the save dir is refused while the two ranks of this one share it
        prepare_save_dir(str(saves["ddp"]))
        result["lock"] = None
    except CheckpointError as err:
        result["lock"] = str(err)
    os.kill(ranks[1], signal.SIGKILL)
    start = time.monotonic()
    result["killed_returncode"] = killed.finish(timeout=EXIT_BOUND)
    result["exit_seconds"] = time.monotonic() - start
    result["ranks"], result["killed"] = ranks, killed.log
    result["resumed"] = run(ddp)

    result["fsdp"] = run(train_command(
        2, data, saves["fsdp"], "caption", *TWO_RANKS, *COMMON, "--no-epoch-checkpoints", "--max-update", "4",
        "--ddp-backend", "fully_sharded", "--checkpoint-activations",
        "--restore-file", str(saves["reference"] / "checkpoint2.pt")))
    result["one"] = run(train_command(1, data, saves["one"], "caption", *ONE_RANK, *COMMON, "--no-epoch-checkpoints",
                                      "--restore-file", str(saves["fsdp"] / "checkpoint_last.pt")))
    return result


def assert_same_updates(log: str, reference: dict, expected: list) -> None:
    updates = losses(log)
    assert sorted(updates) == expected, log[-3000:]
    for num_updates in expected:
        for name in ("loss", "nll_loss", "gnorm", "lr", "nsentences"):
            assert updates[num_updates][name] == reference[num_updates][name], (num_updates, name)


def test_kill_of_one_rank_ends_the_run_and_resuming_gives_the_uninterrupted_losses(chain):
    """torchrun sees rank 1 die and tears rank 0 down: the launch ends, non-zero, within seconds. The same command
    then resumes from the last checkpoint (update 2, or 3 if its end-of-epoch save had finished) and every update
    has the losses of one rank with four times the batch (--update-freq equivalence, data parallel)."""
    assert chain["killed_returncode"] not in (None, 0), chain["killed"][-3000:]
    assert chain["exit_seconds"] < EXIT_BOUND
    assert not any(Path(f"/proc/{pid}").exists() for pid in chain["ranks"].values())
    reference = losses(chain["reference"])
    assert sorted(reference) == list(range(1, EPOCHS + 1))
    killed = losses(chain["killed"])
    assert KILLED_AT in killed
    assert_same_updates(chain["killed"], reference, sorted(killed))
    [loaded] = re.findall(r"loaded checkpoint \S*checkpoint_last\.pt \(epoch (\d+) @ (\d+) updates\)", chain["resumed"])
    resumed_at = int(loaded[1])
    assert resumed_at in (KILLED_AT - 1, KILLED_AT) and int(loaded[0]) == resumed_at + 1
    assert_same_updates(chain["resumed"], reference, list(range(resumed_at + 1, EPOCHS + 1)))
    weights = torch.load(chain["saves"]["ddp"] / "checkpoint_last.pt", weights_only=False)["model"]
    expected = torch.load(chain["saves"]["reference"] / "checkpoint_last.pt", weights_only=False)["model"]
    for name, value in expected.items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=1e-5, msg=name)


def test_save_dir_lock_is_held_by_one_rank_and_refuses_a_second_run(chain):
    assert chain["lock"] is not None, "a second run was let into the save dir of a running one"
    assert f"is in use by another training run (pid {chain['ranks'][0]} " in chain["lock"]
    assert "choose another --save-dir" in chain["lock"]
    # the SIGKILLed run never released it: the kernel did, and the rerun took it over
    assert "taking over the lock of a run that is gone" in chain["resumed"]


def test_resume_on_another_world_size_fully_sharded(chain):
    """One rank's checkpoint (update 2) resumed by two fully sharded ranks with --checkpoint-activations, and
    their checkpoint (update 4) by one rank: the reference's losses all the way."""
    reference = losses(chain["reference"])
    assert "fully sharded over 2 ranks" in chain["fsdp"]
    assert re.search(r"loaded checkpoint \S*reference/checkpoint2\.pt \(epoch 3 @ 2 updates\)", chain["fsdp"])
    assert_same_updates(chain["fsdp"], reference, [3, 4])
    assert re.search(r"loaded checkpoint \S*fsdp/checkpoint_last\.pt \(epoch 5 @ 4 updates\)", chain["one"])
    assert_same_updates(chain["one"], reference, [5, 6])
