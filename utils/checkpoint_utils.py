"""Checkpoint I/O for OFA on stock fairseq: weights-only loading, one-line errors, atomic saves, resume.

Checkpoints keep fairseq's layout (``cfg`` or legacy ``args``, ``model``, ``criterion``, ``optimizer_history``,
``task_state``, ``extra_state``, ``last_optimizer_state``): the original OFA's files (released or from its
``train.py``) load here, and ours have the same entries.
"""
from __future__ import annotations

import argparse
import ast
import collections
import errno
import fcntl
import hashlib
import logging
import os
import pickle
import re
import socket
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from fairseq import checkpoint_utils as fairseq_checkpoint_utils
from fairseq.data import data_utils
from fairseq.dataclass.configs import CheckpointConfig
from fairseq.dataclass.utils import convert_namespace_to_omegaconf, overwrite_args_by_name
from omegaconf import OmegaConf

logger = logging.getLogger(__name__)

# Everything besides tensors and builtin containers that fairseq/OFA checkpoints pickle: the legacy ``args`` and
# the model options inside ``cfg`` are argparse.Namespace; meters may hold numpy scalars (pickled under
# ``numpy.core`` by numpy 1.x, with dtype classes since numpy 1.25).
SAFE_GLOBALS = [
    argparse.Namespace,
    collections.OrderedDict,
    np.dtype,
    np._core.multiarray.scalar,
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    *[type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)],
]

_DISALLOWED_GLOBAL = re.compile(r"unsupported global:? (?:GLOBAL )?([\w.]+)", re.IGNORECASE)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message is one line naming the file."""


def torch_load_safely(path: str) -> Any:
    """``torch.load(weights_only=True)`` allowing only :data:`SAFE_GLOBALS`; no pickled code ever runs."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS), open(path, "rb") as f:
            return torch.load(f, map_location=torch.device("cpu"), weights_only=True)
    except pickle.UnpicklingError as err:
        disallowed = _DISALLOWED_GLOBAL.search(str(err))
        if disallowed:
            raise CheckpointError(
                f"{path}: refusing to load: it pickles '{disallowed.group(1)}', which is not among the types "
                f"OFA/fairseq checkpoints contain (tensors, Namespace, OrderedDict, numpy scalars)"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint or corrupt ({_reason(err)})") from None
    except Exception as err:  # torch reports truncated/garbled files with many exception types
        raise CheckpointError(f"{path}: cannot read checkpoint, truncated or corrupt ({_reason(err)})") from None


def _reason(err: BaseException) -> str:
    """The first informative line of ``err`` (torch's advice to disable weights-only loading left out)."""
    lines = [line.strip() for line in str(err).splitlines()
             if line.strip() and "weights_only" not in line and not line.startswith("Check the documentation")]
    return f"{type(err).__name__}: {lines[0].split('. ')[0]}" if lines else type(err).__name__


def load_checkpoint_to_cpu(path: str, arg_overrides: Optional[Dict[str, Any]] = None,
                           load_on_all_ranks: bool = False) -> dict:
    """Load a training checkpoint to CPU, apply ``arg_overrides`` and upgrade it like fairseq does.

    ``cfg`` becomes an OmegaConf config that may hold the original's nested ``argparse.Namespace`` model options.
    ``load_on_all_ranks`` is fairseq's signature; local files need no coordination between ranks.
    """
    return upgrade_checkpoint(torch_load_safely(path), path, arg_overrides)


def upgrade_checkpoint(state: Any, path: str, arg_overrides: Optional[Dict[str, Any]] = None) -> dict:
    """What :func:`load_checkpoint_to_cpu` does after reading ``path``: checks, ``arg_overrides``, fairseq's
    upgrades; for checkpoint dicts built in memory (a converted model folder)."""
    if not isinstance(state, dict) or "model" not in state:
        found = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a fairseq/OFA checkpoint (no 'model' entry; found {found})")
    verify_model_checksum(state, path)

    if state.get("cfg") is not None:
        state["cfg"] = OmegaConf.create(state["cfg"], flags={"allow_objects": True})
    apply_arg_overrides(state, arg_overrides)
    try:
        state = fairseq_checkpoint_utils._upgrade_state_dict(state)
    except KeyError as err:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing entry {err}") from None
    itr_state = state["extra_state"].get("train_iterator")
    if itr_state is not None:  # weights-only files (converters) carry no epoch; epochs start at 1
        itr_state["epoch"] = max(itr_state.get("epoch", 1), 1)
    return state


def apply_arg_overrides(state: dict, arg_overrides: Optional[Dict[str, Any]]) -> None:
    """Set ``arg_overrides`` in a loaded checkpoint's legacy ``args`` and its ``cfg``."""
    if not arg_overrides:
        return
    if state.get("args") is not None:
        for name, value in arg_overrides.items():
            setattr(state["args"], name, value)
    if state.get("cfg") is not None:
        overwrite_args_by_name(state["cfg"], arg_overrides)


def _layout_hint(state_dict: dict, expected: dict) -> str:
    """Name the fix when the checkpoint and the model differ in OFA-Sys layout (which has no encoder.pos_ln)."""
    if "encoder.embed_positions.weight" not in state_dict:
        return ""
    checkpoint_ofasys = "encoder.pos_ln.weight" not in state_dict
    if checkpoint_ofasys == ("encoder.pos_ln.weight" not in expected):
        return ""
    if checkpoint_ofasys:
        return "; the checkpoint is in the OFA-Sys layout (ModelScope's ViT / OFA-6B models): add --use-ofasys"
    return "; the checkpoint is in the original OFA layout, the model in the OFA-Sys one (--use-ofasys, set by ofa_6b)"


def load_model_state(model: torch.nn.Module, state_dict: dict, path: str, strict: bool = True,
                     model_cfg=None) -> None:
    """Load ``state_dict`` into ``model`` after checking names and shapes; a mismatch is one line naming ``path``."""
    _upgrade_and_check(model, state_dict, path, strict)
    if model_cfg is not None:
        model.load_state_dict(state_dict, strict=strict, model_cfg=model_cfg)
    else:
        model.load_state_dict(state_dict, strict=strict)


def _upgrade_and_check(model: torch.nn.Module, state_dict: dict, path: str, strict: bool) -> None:
    """Bring ``state_dict`` to ``model``'s layout and check its names and shapes (one line naming ``path``)."""
    if hasattr(model, "upgrade_state_dict"):
        model.upgrade_state_dict(state_dict)  # fills computed buffers (rp buckets), heads, added symbols
    expected = model.state_dict()
    problems = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                for k, v in state_dict.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if strict:
        problems += [f"{k} missing from checkpoint" for k in expected if k not in state_dict]
        problems += [f"unexpected key {k}" for k in state_dict if k not in expected]
    if problems:
        raise CheckpointError(
            f"{path}: weights do not fit the {type(model).__name__} built from the config "
            f"({len(problems)} mismatch(es); first: {problems[0]}){_layout_hint(state_dict, expected)}"
        )


def checkpoint_cfg(state: dict, path: str):
    """The checkpoint's config as OmegaConf (legacy ``args`` converted)."""
    if state.get("args") is not None:
        return convert_namespace_to_omegaconf(state["args"])
    if state.get("cfg") is not None:
        return state["cfg"]
    raise CheckpointError(f"{path}: checkpoint holds neither 'cfg' nor 'args'")


# ---- model checksum ------------------------------------------------------------------------------------------

#: ``extra_state`` entry holding the SHA-256 of the model weights (fairseq and the original ignore unknown entries)
CHECKSUM_KEY = "model_sha256"


def model_checksum(state_dict: dict) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict's tensors, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        digest.update(f"{name}\0".encode())
        if torch.is_tensor(value):
            digest.update(f"{value.dtype}{tuple(value.shape)}\0".encode())
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def verify_model_checksum(state: dict, path: str) -> None:
    """Compare the weights with the checksum stored at save time; files without one (released, the original's)
    are taken as they are."""
    expected = (state.get("extra_state") or {}).get(CHECKSUM_KEY)
    if expected is not None and model_checksum(state["model"]) != expected:
        raise CheckpointError(f"{path}: corrupt: the model weights do not match the checksum stored when it was "
                              f"saved (bytes changed on disk or in transfer)")


# ---- saving --------------------------------------------------------------------------------------------------


#: temporary files are ``.<name><TMP_MARK><pid>``, renamed onto ``<name>`` once complete
TMP_MARK = ".tmp"
_TMP_FILE = re.compile(rf"^\..+{re.escape(TMP_MARK)}\d+$")


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (disk full, no permission...); the previous file is kept."""


class _WriteRecorder:
    """File wrapper remembering why a write failed: torch reports a failed write as 'unexpected pos'."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except BaseException as err:  # OSError (disk full) or KeyboardInterrupt arriving mid-write
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.file.flush()


def _write_atomically(path: str, write) -> None:
    """``write(file)`` into a temporary file next to ``path``, fsync, rename: readers (and a run killed mid-write)
    see either the old file or the complete new one. A failed write names its cause, the folder and the file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(folder, f".{os.path.basename(path)}{TMP_MARK}{os.getpid()}")
    recorder = None
    try:
        with open(tmp_path, "wb") as f:
            recorder = _WriteRecorder(f)
            write(recorder)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted while writing {path}; it keeps its previous content") from None
    except (OSError, RuntimeError) as err:
        cause = recorder.error if recorder is not None and recorder.error is not None else err
        if isinstance(cause, KeyboardInterrupt):
            raise KeyboardInterrupt(f"interrupted while writing {path}; it keeps its previous content") from None
        if not isinstance(cause, OSError):
            raise
        if cause.errno == errno.ENOSPC:
            raise CheckpointWriteError(f"no space left on {folder} while writing {path}") from None
        raise CheckpointWriteError(f"{cause.strerror or cause} on {folder} while writing {path}") from None
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    _fsync_dir(folder)


def save_checkpoint_file(obj: Any, path: str) -> None:
    """``torch.save`` atomically (see :func:`_write_atomically`). A checkpoint (a dict with a ``model`` state
    dict) gets the checksum of its weights in ``extra_state``, verified by :func:`load_checkpoint_to_cpu`."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = {**obj, "extra_state": {**(obj.get("extra_state") or {}), CHECKSUM_KEY: model_checksum(obj["model"])}}
    _write_atomically(path, lambda f: torch.save(obj, f))


def copy_checkpoint_file(src: str, dst: str) -> None:
    """Atomic copy (same temp-file-and-rename protocol as :func:`save_checkpoint_file`)."""
    def copy(fout) -> None:
        with open(src, "rb") as fin:
            while chunk := fin.read(1 << 24):
                fout.write(chunk)

    _write_atomically(dst, copy)


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- the save directory ----------------------------------------------------------------------------------------

LOCK_NAME = "train.lock"


class SaveDirLock:
    """An exclusive lock on a ``--save-dir``, so two runs never overwrite each other's checkpoints.

    ``flock`` on ``<save_dir>/train.lock``: the kernel releases it when the holder exits, however it dies, so a
    lock left by a dead run is simply taken over. The file names the holder (pid, host, start time) for the
    message the second run stops with.
    """

    def __init__(self, save_dir: str):
        self.path = os.path.join(save_dir, LOCK_NAME)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = self._read_holder()
            os.close(self._fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise CheckpointError(f"--save-dir {save_dir}: cannot lock {self.path} ({err.strerror})") from None
            raise CheckpointError(
                f"--save-dir {save_dir} is in use by another training run ({holder or 'holder unknown'}); "
                f"wait for it to finish or choose another --save-dir") from None
        previous = self._read_holder()
        if previous:
            logger.warning("--save-dir %s: taking over the lock of a run that is gone (%s)", save_dir, previous)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on host {socket.gethostname()}, since "
                            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)

    def _read_holder(self) -> str:
        return os.pread(self._fd, 4096, 0).decode("utf-8", "replace").strip()

    def release(self) -> None:
        """Unlock; the emptied file stays (removing it could let two later runs lock different files)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def prepare_save_dir(save_dir: str) -> SaveDirLock:
    """Create and lock ``save_dir`` and remove the temporary files of saves that were killed mid-write."""
    os.makedirs(save_dir, exist_ok=True)
    lock = SaveDirLock(save_dir)
    for name in sorted(os.listdir(save_dir)):
        if _TMP_FILE.match(name):
            logger.info("removing %s, left by an interrupted checkpoint save", os.path.join(save_dir, name))
            os.remove(os.path.join(save_dir, name))
    return lock


def kept_checkpoints(cfg: CheckpointConfig, epochs: float, updates: float, validating: bool) -> float:
    """How many checkpoint files :func:`save_checkpoint` leaves after ``epochs`` epochs of ``updates`` updates in
    all (``math.inf`` when they are unbounded), by its ``--save-*``/``--keep-*``/``--no-*`` rules."""
    if cfg.no_save:
        return 0

    def kept(saved: float, keep: int) -> float:
        return min(saved, keep) if keep > 0 else saved

    count = 0 if cfg.no_last_checkpoints else 1
    if not cfg.no_epoch_checkpoints:
        count += kept(epochs // cfg.save_interval, cfg.keep_last_epochs)
    if cfg.save_interval_updates > 0:
        count += kept(updates // cfg.save_interval_updates, cfg.keep_interval_updates)
    if validating:
        count += 1 + max(cfg.keep_best_checkpoints, 0)
    return count


def checkpoint_paths(folder: str, pattern: str) -> List[str]:
    """Files of ``folder`` matching ``pattern``, sorted by its first group (a number), largest first."""
    return fairseq_checkpoint_utils.checkpoint_paths(folder, pattern=pattern)


def save_checkpoint(cfg: CheckpointConfig, trainer, epoch_itr, val_loss: Optional[float]) -> Optional[str]:
    """Write the checkpoints fairseq's rules ask for (epoch, update, best, last) and prune old ones.

    Same file names and ``--keep-*`` rules as fairseq's ``save_checkpoint``; every file is written or copied
    atomically. The best score so far is kept in ``save_checkpoint.best`` as fairseq does.
    """
    if val_loss is not None:
        prev_best = getattr(save_checkpoint, "best", val_loss)
        save_checkpoint.best = (max if cfg.maximize_best_checkpoint_metric else min)(val_loss, prev_best)
    if cfg.no_save:
        return None
    trainer.consolidate_optimizer()  # collective with sharded optimizer states: every rank takes part
    if not trainer.should_save_checkpoint_on_current_rank:
        return None
    os.makedirs(cfg.save_dir, exist_ok=True)

    def is_better(a, b):
        return a >= b if cfg.maximize_best_checkpoint_metric else a <= b

    epoch, updates = epoch_itr.epoch, trainer.get_num_updates()
    end_of_epoch = epoch_itr.end_of_epoch()
    suffix = trainer.checkpoint_suffix
    best_pattern = rf"checkpoint\.best_{cfg.best_checkpoint_metric}_(\d+\.?\d*){suffix}\.pt"
    conditions = collections.OrderedDict()
    conditions[f"checkpoint{epoch}{suffix}.pt"] = (
        end_of_epoch and not cfg.no_epoch_checkpoints and epoch % cfg.save_interval == 0)
    conditions[f"checkpoint_{epoch}_{updates}{suffix}.pt"] = (
        not end_of_epoch and cfg.save_interval_updates > 0 and updates % cfg.save_interval_updates == 0)
    conditions[f"checkpoint_best{suffix}.pt"] = val_loss is not None and is_better(val_loss, save_checkpoint.best)
    if val_loss is not None and cfg.keep_best_checkpoints > 0:
        kept = checkpoint_paths(cfg.save_dir, best_pattern)
        worst_kept = None
        if kept:
            worst_name = kept[-1] if cfg.maximize_best_checkpoint_metric else kept[0]
            worst_kept = float(re.fullmatch(best_pattern, os.path.basename(worst_name)).group(1))
        with data_utils.numpy_seed(epoch, updates, val_loss):
            tie_breaker = np.random.randint(0, cfg.keep_best_checkpoints)
        name = f"checkpoint.best_{cfg.best_checkpoint_metric}_{val_loss:.3f}{tie_breaker}{suffix}.pt"
        conditions[name] = worst_kept is None or len(kept) < cfg.keep_best_checkpoints or is_better(
            val_loss, worst_kept)
    conditions[f"checkpoint_last{suffix}.pt"] = not cfg.no_last_checkpoints

    # checkpoint_last is written first and the others copied from it: if a copy fails (disk full), a restart
    # still resumes from this save
    conditions.move_to_end(f"checkpoint_last{suffix}.pt", last=False)
    targets = [os.path.join(cfg.save_dir, name) for name, wanted in conditions.items() if wanted]
    # the epoch's batches per rank: a resume with another world size or batch size keeps the share of the epoch done
    extra_state = {"train_iterator": {**epoch_itr.state_dict(), "batches_per_rank": len(epoch_itr)},
                   "val_loss": val_loss}
    if hasattr(save_checkpoint, "best"):
        extra_state["best"] = save_checkpoint.best
    if targets:
        trainer.save_checkpoint(targets[0], extra_state)
        for target in targets[1:]:
            copy_checkpoint_file(targets[0], target)
        logger.info("saved checkpoint %s (epoch %d @ %d updates, score %s)", ", ".join(targets), epoch, updates,
                    val_loss)

    def prune(pattern: str, keep: int, oldest_last: bool = True) -> None:
        found = checkpoint_paths(cfg.save_dir, pattern)
        for path in (found if oldest_last else found[::-1])[keep:]:
            os.remove(path)

    if not end_of_epoch and cfg.keep_interval_updates > 0:
        prune(rf"checkpoint_\d+_(\d+){suffix}\.pt", cfg.keep_interval_updates)
    if cfg.keep_last_epochs > 0:
        prune(rf"checkpoint(\d+){suffix}\.pt", cfg.keep_last_epochs)
    if cfg.keep_best_checkpoints > 0:
        prune(best_pattern, cfg.keep_best_checkpoints, oldest_last=cfg.maximize_best_checkpoint_metric)
    return targets[0] if targets else None


def rescaled_position(itr_state: dict, batches_per_rank: int, path: str) -> dict:
    """``itr_state`` for an epoch of ``batches_per_rank`` batches. A checkpoint written mid-epoch with another
    number of batches per rank (another world size or batch size) resumes after the same share of the epoch, not
    after the same number of batches, which would skip or repeat rows; not exactly after the same rows either: each
    rank reads a contiguous slice of the file and the batches of a slice come in shuffled order."""
    saved, done = itr_state.get("batches_per_rank"), itr_state.get("iterations_in_epoch", 0)
    if not saved or saved == batches_per_rank or done == 0:
        return itr_state
    position = done * batches_per_rank // saved
    logger.warning("%s stopped after batch %d of %d per rank in epoch %d; with %d batches per rank here (another "
                   "world size or batch size) the epoch resumes after batch %d: the same share of the epoch, not "
                   "exactly the same rows", path, done, saved, itr_state["epoch"], batches_per_rank, position)
    return {**itr_state, "iterations_in_epoch": position}


def load_checkpoint(cfg: CheckpointConfig, trainer, **passthrough_args):
    """Restore the trainer from ``--restore-file`` / ``checkpoint_last.pt`` / ``--finetune-from-model`` and return
    ``(extra_state, epoch_itr)``, the iterator positioned after the last batch the checkpoint had trained on."""
    reset_optimizer, reset_lr_scheduler = cfg.reset_optimizer, cfg.reset_lr_scheduler
    reset_meters, reset_dataloader = cfg.reset_meters, cfg.reset_dataloader
    finetuning = cfg.finetune_from_model is not None
    if finetuning and (reset_optimizer or reset_lr_scheduler or reset_meters or reset_dataloader):
        raise ValueError("--finetune-from-model implies --reset-optimizer/-lr-scheduler/-meters/-dataloader; "
                         "do not pass them together")
    if finetuning and cfg.restore_file != "checkpoint_last.pt":
        raise ValueError("--finetune-from-model and --restore-file cannot be used together")

    suffix = trainer.checkpoint_suffix
    if cfg.restore_file == "checkpoint_last.pt":
        path = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
        if finetuning and not os.path.exists(path):
            if not os.path.exists(cfg.finetune_from_model):
                raise CheckpointError(f"--finetune-from-model {cfg.finetune_from_model} does not exist")
            path = cfg.finetune_from_model
            reset_optimizer = reset_lr_scheduler = reset_meters = reset_dataloader = True
            logger.info("finetuning from %s: optimizer, lr scheduler, meters and dataloader are reset", path)
    else:
        path = cfg.restore_file.replace(".pt", suffix + ".pt")
        if not os.path.exists(path):
            raise CheckpointError(f"--restore-file {path} does not exist")

    extra_state = trainer.load_checkpoint(path, reset_optimizer, reset_lr_scheduler,
                                          ast.literal_eval(cfg.optimizer_overrides), reset_meters=reset_meters)
    if extra_state is not None and "best" in extra_state and not reset_optimizer and not reset_meters:
        save_checkpoint.best = extra_state["best"]

    if extra_state is not None and not reset_dataloader:
        itr_state = extra_state["train_iterator"]
        epoch_itr = trainer.get_train_iterator(epoch=itr_state["epoch"], load_dataset=True, **passthrough_args)
        # rows are read by index, so fast-forwarding the batch iterator resumes at the next unread row
        epoch_itr.load_state_dict(rescaled_position(itr_state, len(epoch_itr), path))
    else:
        epoch_itr = trainer.get_train_iterator(epoch=1, load_dataset=True, **passthrough_args)
    trainer.lr_step(epoch_itr.epoch)
    return extra_state, epoch_itr
