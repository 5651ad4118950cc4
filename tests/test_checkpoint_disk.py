"""The README's own-data example keeps one checkpoint; train.py says when its kept checkpoints outgrow the disk."""
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OFA_TINY_CHECKPOINT = 464_000_000  # an ofa_tiny checkpoint with Adam's state, as train.py writes it


def _readme_train_argv() -> list[str]:
    section = (REPO / "README.md").read_text().split("### Your own data", 1)[1]
    command = re.search(r"^python train\.py ((?:.*\\\n)*.*)$", section, re.M).group(1)
    argv = shlex.split(command.replace("\\\n", " "))
    return [str(REPO) if arg == "." else arg for arg in argv]  # --user-dir .


def test_readme_own_data_example_keeps_one_checkpoint_and_the_warning_names_the_fix():
    import train
    from utils.checkpoint_utils import kept_checkpoints

    argv = _readme_train_argv()
    assert "--no-epoch-checkpoints" in argv
    cfg = train.parse_config(argv)
    # 4 rows in batches of 4: one update per epoch, 200 epochs
    assert kept_checkpoints(cfg.checkpoint, 200, 200, validating=False) == 1
    assert train.checkpoint_disk_warning(cfg, OFA_TINY_CHECKPOINT, 1, free_bytes=10**9) is None

    every_epoch = train.parse_config([arg for arg in argv if arg != "--no-epoch-checkpoints"])
    warning = train.checkpoint_disk_warning(every_epoch, OFA_TINY_CHECKPOINT, 1, free_bytes=20 * 10**9)
    assert warning.startswith("the 201 checkpoints this run keeps in runs/caption take about 93.3 GB (464 MB each), "
                              "more than the 20.0 GB free there: --no-epoch-checkpoints"), warning
    by_epochs = [arg for arg in argv if arg not in ("--no-epoch-checkpoints", "--max-update", "200")]
    three = train.parse_config(by_epochs + ["--max-epoch", "3"])
    assert train.checkpoint_disk_warning(three, OFA_TINY_CHECKPOINT, 1, 10**9).startswith("the 4 checkpoints")
    unbounded = train.parse_config(by_epochs)  # no --max-epoch/--max-update: no count to warn about
    assert train.checkpoint_disk_warning(unbounded, OFA_TINY_CHECKPOINT, 1, 10**9) is None
    last_two = train.parse_config([arg for arg in argv if arg != "--no-epoch-checkpoints"] +
                                  ["--keep-last-epochs", "2"])
    assert train.checkpoint_disk_warning(last_two, OFA_TINY_CHECKPOINT, 1, free_bytes=20 * 10**9) is None
    # checkpoints every 50 updates with validation: last, best, 4 update checkpoints (3 kept)
    updates = train.parse_config([arg for arg in argv if arg != "--disable-validation"] +
                                 ["--save-interval-updates", "50", "--keep-interval-updates", "3"])
    assert kept_checkpoints(updates.checkpoint, 200, 200, validating=True) == 5
    assert "the 5 checkpoints" in train.checkpoint_disk_warning(updates, OFA_TINY_CHECKPOINT, 1, free_bytes=10**9)


def test_checkpoint_size_estimate_counts_weights_adam_and_ema():
    import torch
    import train

    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 10))  # 2 x 110 float32: 880 bytes
    model[1].weight = model[0].weight  # shared: saved once (400 bytes less)
    model[1].bias.requires_grad_(False)  # frozen: no Adam moments
    model.register_buffer("table", torch.zeros(25, dtype=torch.int64))  # 200 bytes, no moments
    argv = _readme_train_argv()
    weights, trained = 880 - 400 + 200, (880 - 400 - 40)
    assert train.checkpoint_bytes(train.parse_config(argv), model) == weights + 2 * trained
    assert train.checkpoint_bytes(train.parse_config(argv + ["--store-ema"]), model) == 2 * weights + 2 * trained
