"""fairseq's :class:`~fairseq.trainer.Trainer` with what the original OFA changed in its fairseq fork.

- checkpoints load weights-only (torch >= 2.6) with one-line errors and are written atomically;
- EMA: integer buffers (relative-position buckets) are copied, not averaged; the EMA starts from the initial
  weights; ``--use-ema-weights-to-init-param`` and ``--use-latest-weights-to-init-ema`` (:mod:`training.ema`);
- ``lr_reinit`` for ``polynomial_decay --warmup-ratio``;
- data parallel training on CPU (gloo) as well as GPU; ``--amp`` on any device (:mod:`training.precision`);
- ``--skip-bad-rows``: totals per epoch and file, batches without a usable row are no-ops (:mod:`training.bad_rows`);
- ``--ddp-backend fully_sharded`` on PyTorch's FSDP2 (``fully_shard``) instead of fairscale, saving and loading
  the same full checkpoints as data parallel runs (:mod:`training.fsdp`).

This module composes those jobs into one fairseq ``Trainer``.
"""
import logging
import os
import time

import torch
from fairseq import trainer as fairseq_trainer
from fairseq import utils
from fairseq.distributed import ModuleProxyWrapper
from fairseq.logging import meters, metrics

from training.bad_rows import SkipBadRowsMixin
from training.checkpoint import read_checkpoint
from training.ema import build_ema, initial_weights, restore_ema
from training.fsdp import FullyShardedMixin, local_bytes, shard_optimizer_state
from training.precision import check_precision_supported, fix_amp_optimizer
from utils import precision
from utils.checkpoint_utils import CheckpointError, load_model_state, save_checkpoint_file

logger = logging.getLogger(__name__)


class Trainer(FullyShardedMixin, SkipBadRowsMixin, fairseq_trainer.Trainer):
    """Data parallel (or fully sharded) trainer; see the module docstring for what differs from fairseq's."""

    def __init__(self, cfg, task, model, criterion, quantizer=None):
        self._state_bytes_logged = False
        check_precision_supported(cfg)  # before fairseq's setup, which fails obscurely (e.g. --bf16 implies --tpu)
        super().__init__(cfg, task, model, criterion, quantizer)
        logger.info("training precision: %s", precision.training_precision(self.cfg.common, self.device.type))
        if self.cfg.ema.store_ema:
            self._build_ema()  # from the initial weights, not lazily after the first update

    @property
    def model(self):
        if self._wrapped_model is None and self.use_distributed_wrapper and not self.cuda \
                and self.cfg.distributed_training.ddp_backend in ("c10d", "pytorch_ddp"):
            # fairseq passes device_ids, which torch's DDP rejects for CPU modules
            ddp_cfg = self.cfg.distributed_training
            self._wrapped_model = ModuleProxyWrapper(torch.nn.parallel.DistributedDataParallel(
                self._model,
                process_group=self.data_parallel_process_group,
                broadcast_buffers=ddp_cfg.broadcast_buffers,
                bucket_cap_mb=ddp_cfg.bucket_cap_mb,
                find_unused_parameters=ddp_cfg.find_unused_parameters,
                gradient_as_bucket_view=ddp_cfg.gradient_as_bucket_view,
            ))
        return super().model

    def _build_optimizer(self):
        super()._build_optimizer()
        fix_amp_optimizer(self._optimizer, self.device.type, self.cfg.common)

    def _build_ema(self):
        if self.cfg.ema.store_ema:
            self._ema = build_ema(self._model, self.cfg.ema, self.device)  # fairseq private: Trainer._ema

    def train_step(self, samples, raise_oom=False):
        log_output = super().train_step(samples, raise_oom)
        if not self._state_bytes_logged:
            self._state_bytes_logged = True
            optimizer_tensors = [v for entry in self.optimizer.optimizer.state.values() for v in entry.values()
                                 if torch.is_tensor(v)]
            params = list(self.model.parameters())
            logger.info("this rank holds %d parameter, %d gradient and %d optimizer-state bytes", local_bytes(params),
                        local_bytes(p.grad for p in params if p.grad is not None), local_bytes(optimizer_tensors))
        return log_output

    def lr_reinit(self, total_num_updates: int, num_updates: int) -> None:
        """Tell the scheduler the real number of updates (``--warmup-ratio``)."""
        if hasattr(self.lr_scheduler, "reinit"):
            self.lr_scheduler.reinit(total_num_updates, num_updates)

    def save_checkpoint(self, filename, extra_state):
        """Write all training state to ``filename`` atomically (master rank only)."""
        if not self.should_save_checkpoint_on_current_rank:
            return None
        state = utils.move_to_cpu(self.state_dict())
        state["extra_state"].update(extra_state)
        save_checkpoint_file(state, filename)
        return os.path.abspath(filename)

    def load_checkpoint(self, filename, reset_optimizer=False, reset_lr_scheduler=False, optimizer_overrides=None,
                        reset_meters=False):
        """Restore model, criterion, optimizer, scheduler, meters and EMA from ``filename``; returns its
        ``extra_state`` (None when the file does not exist: training starts from scratch)."""
        self._optim_history = []  # fairseq private: the history state_dict() saves, extended by each save
        if not os.path.isfile(filename):
            logger.info("no checkpoint at %s: training from scratch", filename)
            return None
        logger.info("loading checkpoint %s", filename)
        state = read_checkpoint(filename, self.data_parallel_rank, self.data_parallel_world_size,
                                self.data_parallel_process_group)
        extra_state = state["extra_state"]
        history = state["optimizer_history"]
        if "num_updates" in history[-1]:
            self.get_model().set_num_updates(history[-1]["num_updates"])

        load_model_state(self.get_model(), initial_weights(self.cfg, state, filename), filename, strict=True,
                         model_cfg=self.cfg.model)
        if utils.has_parameters(self.get_criterion()):
            self.get_criterion().load_state_dict(state["criterion"], strict=True)
        self._optim_history = history

        last_optim_state = state.get("last_optimizer_state")
        if last_optim_state is not None and not reset_optimizer:
            self._build_optimizer()  # after the weights: parameters may have changed
            last = history[-1]
            current = (self.get_criterion().__class__.__name__, self.optimizer.__class__.__name__)
            if (last["criterion_name"], last["optimizer_name"]) != current:
                raise CheckpointError(
                    f"{filename}: saved with criterion {last['criterion_name']} and optimizer "
                    f"{last['optimizer_name']}, this run uses {current[0]} and {current[1]}; pass --reset-optimizer"
                )
            if not reset_lr_scheduler:
                self.lr_scheduler.load_state_dict(last["lr_scheduler_state"])
            if self.fully_sharded:
                last_optim_state = shard_optimizer_state(last_optim_state, list(self.optimizer.params))
            self.optimizer.load_state_dict(last_optim_state, optimizer_overrides)
            self.set_num_updates(last["num_updates"])

        itr_state = extra_state["train_iterator"]
        if "previous_training_time" in extra_state:  # fairseq private: the clock behind cumulative_training_time
            self._previous_training_time = extra_state["previous_training_time"]
            self._start_time = time.time()
        self.lr_step(itr_state["epoch"])
        if itr_state.get("version", 1) >= 2 and itr_state["iterations_in_epoch"] == 0:
            reset_meters = True  # start of an epoch
        if "metrics" in extra_state and not reset_meters:
            metrics.load_state_dict(extra_state["metrics"])
            for meter in metrics.get_meters("default"):
                if isinstance(meter, meters.TimeMeter):
                    meter.reset()
        if self.cfg.ema.store_ema:
            restore_ema(self.ema, self.cfg, state, filename)
        logger.info("loaded checkpoint %s (epoch %d @ %d updates)", filename, itr_state["epoch"],
                    self.get_num_updates())
        return extra_state
