"""Save directories are locked, interrupted saves are cleaned up and explained, checksums catch flipped bytes."""
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import checkpoint_utils
from utils.checkpoint_utils import CHECKSUM_KEY, CheckpointError, CheckpointWriteError, prepare_save_dir

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _hold_lock(save_dir: Path) -> subprocess.Popen:
    """A real second process holding the lock of ``save_dir`` until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from utils.checkpoint_utils import prepare_save_dir; "
                               "lock = prepare_save_dir(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
         str(save_dir)], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_run_on_a_locked_save_dir_stops_naming_the_holder(tmp_path, caplog):
    # train.py takes the lock at startup (tests/test_train.py sees train.lock) and prints CheckpointErrors in one line
    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(CheckpointError, match=rf"--save-dir {tmp_path} is in use by another training run "
                                                  rf"\(pid {holder.pid} on host "):
            prepare_save_dir(str(tmp_path))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # the holder died without unlocking: its lock is taken over, and the takeover is logged
    with caplog.at_level(logging.WARNING):
        lock = prepare_save_dir(str(tmp_path))
    assert f"taking over the lock of a run that is gone (pid {holder.pid} on host" in caplog.text
    lock.release()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare_save_dir(str(tmp_path)).release()  # a cleanly released lock is no takeover
    assert "taking over" not in caplog.text


def test_temporary_files_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    for name in (".checkpoint_last.pt.tmp4242", ".checkpoint3.pt.tmp17", "checkpoint_last.pt", "notes.tmp1"):
        (tmp_path / name).write_bytes(b"x")
    prepare_save_dir(str(tmp_path)).release()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_last.pt", "notes.tmp1", "train.lock"]


_SAVE_ON_FULL_DISK = """
import os, sys, torch
from utils.checkpoint_utils import CheckpointWriteError, save_checkpoint_file, torch_load_safely
path = sys.argv[1] + "/checkpoint_last.pt"
save_checkpoint_file({"model": {"w": torch.ones(10)}}, path)  # fits
try:
    save_checkpoint_file({"model": {"w": torch.zeros(1 << 20)}}, path)  # 4 MiB on a 1 MiB filesystem
except CheckpointWriteError as err:
    print(err)
print(os.listdir(sys.argv[1]), float(torch_load_safely(path)["model"]["w"].sum()))
"""


def test_full_disk_is_named_and_keeps_the_previous_checkpoint(tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare (user + mount namespaces) to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {disk} && "
                             f"{sys.executable} -c '{_SAVE_ON_FULL_DISK}' {disk}"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    message, files = result.stdout.strip().splitlines()[-2:]
    assert message == f"no space left on {disk} while writing {disk}/checkpoint_last.pt"
    assert "unexpected pos" not in result.stderr
    assert files == "['checkpoint_last.pt'] 10.0"  # no partial file left, the previous checkpoint intact


def _trainer(save_dir: Path):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import tasks  # noqa: F401
    from trainer import Trainer

    args = options.parse_args_and_arch(options.get_training_parser(), [
        "data", "--task", "caption", "--arch", "ofa_tiny", "--optimizer", "adam", "--cpu", "--save-dir",
        str(save_dir)])
    return Trainer(convert_namespace_to_omegaconf(args), None, torch.nn.Linear(2, 2), torch.nn.Module())


def test_checkpoint_last_is_written_before_the_epoch_copy(tmp_path):
    from fairseq.data import iterators
    from torch.utils.data import TensorDataset

    trainer = _trainer(tmp_path)
    (tmp_path / "checkpoint1.pt").mkdir()  # the epoch checkpoint cannot be written
    epoch_itr = iterators.EpochBatchIterator(dataset=TensorDataset(torch.arange(2)), collate_fn=list,
                                             batch_sampler=[[0], [1]], epoch=1)
    list(epoch_itr.next_epoch_itr(shuffle=False))
    with pytest.raises(CheckpointWriteError, match=rf"while writing {tmp_path}/checkpoint1\.pt"):
        checkpoint_utils.save_checkpoint(trainer.cfg.checkpoint, trainer, epoch_itr, None)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))
    assert state["extra_state"]["train_iterator"]["epoch"] == 2  # a restart resumes after epoch 1


def _checkpoint(weights: dict) -> dict:
    """The smallest dict with fairseq's checkpoint entries."""
    history = [{"criterion_name": "c", "optimizer_name": "o", "lr_scheduler_state": {"best": None},
                "num_updates": 0}]
    return {"cfg": None, "model": weights, "optimizer_history": history, "extra_state": {"val_loss": 1.5}}


def test_flipped_bytes_fail_the_checksum_in_one_line(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    weights = {"encoder.weight": torch.arange(1 << 16, dtype=torch.float32), "step": torch.tensor(3)}
    checkpoint_utils.save_checkpoint_file(_checkpoint(weights), str(path))
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["extra_state"][CHECKSUM_KEY] == checkpoint_utils.model_checksum(weights)
    assert state["extra_state"]["val_loss"] == 1.5

    data = bytearray(path.read_bytes())
    middle = data.index(torch.tensor([30000.0]).numpy().tobytes())  # a weight in the middle of the file
    data[middle + 3] ^= 0x01
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["model"]["encoder.weight"][30000] != 30000.0  # loads, silently wrong
    with pytest.raises(CheckpointError) as err:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(err.value) == (f"{path}: corrupt: the model weights do not match the checksum stored when it was "
                              f"saved (bytes changed on disk or in transfer)")

    # files without a checksum (released checkpoints, the original's) load as before
    torch.save(_checkpoint(weights), path)
    assert CHECKSUM_KEY not in checkpoint_utils.load_checkpoint_to_cpu(str(path))["extra_state"]


class _InterruptedWhilePickling:
    def __reduce__(self):
        raise KeyboardInterrupt


def test_ctrl_c_during_a_save_names_the_file_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    checkpoint_utils.save_checkpoint_file({"model": {"w": torch.ones(3)}}, str(path))
    with pytest.raises(KeyboardInterrupt, match=rf"interrupted while writing {path}; it keeps its previous content"):
        checkpoint_utils.save_checkpoint_file({"model": {"w": torch.zeros(3)}, "x": _InterruptedWhilePickling()},
                                              str(path))
    assert torch.equal(checkpoint_utils.torch_load_safely(str(path))["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["checkpoint_last.pt"]
