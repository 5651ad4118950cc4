"""fairseq's :class:`~fairseq.trainer.Trainer` with what the original OFA changed in its fairseq fork.

- checkpoints load weights-only (torch >= 2.6) with one-line errors and are written atomically;
- EMA: integer buffers (relative-position buckets) are copied, not averaged; the EMA starts from the initial
  weights; ``--use-ema-weights-to-init-param`` and ``--use-latest-weights-to-init-ema``;
- ``lr_reinit`` for ``polynomial_decay --warmup-ratio``;
- data parallel training on CPU (gloo) as well as GPU;
- ``--skip-bad-rows``: totals per epoch and file, batches without a usable row are no-ops (:mod:`utils.bad_rows`).
"""
import logging
import os
import time
from dataclasses import dataclass, field, fields

import torch
from fairseq import trainer as fairseq_trainer
from fairseq import utils
from fairseq.dataclass import FairseqDataclass
from fairseq.distributed import ModuleProxyWrapper
from fairseq.distributed import utils as distributed_utils
from fairseq.logging import meters, metrics
from fairseq.models.ema import EMA

from utils import lr_scheduler  # noqa: F401  (polynomial_decay with --warmup-ratio, also for saved configs)
from utils.bad_rows import SkipBadRowsMixin
from utils.checkpoint_utils import CheckpointError, load_checkpoint_to_cpu, load_model_state, save_checkpoint_file

logger = logging.getLogger(__name__)


@dataclass
class EMAInitConfig(FairseqDataclass):
    """Checkpoint options the original's fork added; stored in ``cfg.checkpoint``."""

    use_ema_weights_to_init_param: bool = field(
        default=False,
        metadata={"help": "initialise the model from the EMA weights stored in the checkpoint (extra_state "
                          "'ema_fp32_params', else 'ema')"},
    )
    use_latest_weights_to_init_ema: bool = field(
        default=False,
        metadata={"help": "initialise the EMA from the checkpoint's model weights instead of its stored EMA"},
    )


class TrainingSetupError(ValueError):
    """A configuration this machine cannot train with (e.g. ``--fp16`` without a GPU); one line for the user."""


EMA_INIT_OPTIONS = tuple(f.name for f in fields(EMAInitConfig) if not f.name.startswith("_"))


def integer_state_keys(model: torch.nn.Module) -> set:
    """State-dict entries that are not floating point (e.g. ``*_rp_bucket`` index tables): EMA copies them."""
    return {name for name, value in model.state_dict().items() if not torch.is_floating_point(value)}


def check_precision_supported(cfg) -> None:
    """``--fp16``/``--amp`` need CUDA, ``--bf16`` a GPU with bfloat16; say so instead of failing deep in torch."""
    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    for flag, wanted in (("--fp16", cfg.common.fp16 or cfg.common.memory_efficient_fp16), ("--amp", cfg.common.amp)):
        if wanted and not use_cuda:
            raise TrainingSetupError(f"{flag} needs a CUDA device; none is in use here (train in fp32 without {flag})")
    if (cfg.common.bf16 or cfg.common.memory_efficient_bf16) and not (use_cuda and torch.cuda.is_bf16_supported()):
        raise TrainingSetupError("--bf16 needs a CUDA device with bfloat16 support; none is in use here")


class Trainer(SkipBadRowsMixin, fairseq_trainer.Trainer):
    """Data parallel trainer; see the module docstring for what differs from fairseq's."""

    def __init__(self, cfg, task, model, criterion, quantizer=None):
        super().__init__(cfg, task, model, criterion, quantizer)
        check_precision_supported(self.cfg)
        if self.cfg.ema.store_ema:
            self._build_ema()  # from the initial weights, not lazily after the first update

    def _checkpoint_option(self, name: str) -> bool:
        return bool(self.cfg.checkpoint.get(name, False))

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

    def _build_ema(self):
        if self.cfg.ema.store_ema:
            self._ema = EMA(self._model, self.cfg.ema, self.device, skip_keys=integer_state_keys(self._model))
            logger.info("EMA of the model weights initialised (decay %g)", self.cfg.ema.ema_decay)

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

    def _read_checkpoint(self, filename: str) -> dict:
        """Rank 0 reads the file and broadcasts it; a read error is raised on every rank."""
        state, error = None, None
        if self.data_parallel_rank == 0:
            try:
                state = load_checkpoint_to_cpu(filename)
            except (CheckpointError, OSError) as err:
                error = err
        if self.data_parallel_world_size > 1:
            state, error = distributed_utils.broadcast_object(
                (state, error), src_rank=0, group=self.data_parallel_process_group, dist_device=self.device)
        if error is not None:
            raise error
        return state

    def load_checkpoint(self, filename, reset_optimizer=False, reset_lr_scheduler=False, optimizer_overrides=None,
                        reset_meters=False):
        """Restore model, criterion, optimizer, scheduler, meters and EMA from ``filename``; returns its
        ``extra_state`` (None when the file does not exist: training starts from scratch)."""
        self._optim_history = []
        if not os.path.isfile(filename):
            logger.info("no checkpoint at %s: training from scratch", filename)
            return None
        logger.info("loading checkpoint %s", filename)
        state = self._read_checkpoint(filename)
        extra_state = state["extra_state"]
        history = state["optimizer_history"]
        if "num_updates" in history[-1]:
            self.get_model().set_num_updates(history[-1]["num_updates"])

        weights = state["model"]
        if self._checkpoint_option("use_ema_weights_to_init_param"):
            ema_weights = extra_state.get("ema_fp32_params", extra_state.get("ema"))
            if ema_weights is None:
                logger.warning("--use-ema-weights-to-init-param: %s holds no EMA weights; using its model weights",
                               filename)
            else:
                logger.info("initialising the model from the EMA weights of %s", filename)
                weights = dict(ema_weights)
        load_model_state(self.get_model(), weights, filename, strict=True, model_cfg=self.cfg.model)
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
            self.optimizer.load_state_dict(last_optim_state, optimizer_overrides)
            self.set_num_updates(last["num_updates"])

        itr_state = extra_state["train_iterator"]
        if "previous_training_time" in extra_state:
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
            self._restore_ema(state, extra_state, filename)
        logger.info("loaded checkpoint %s (epoch %d @ %d updates)", filename, itr_state["epoch"],
                    self.get_num_updates())
        return extra_state

    def _restore_ema(self, state: dict, extra_state: dict, filename: str) -> None:
        if self._checkpoint_option("use_latest_weights_to_init_ema") or "ema" not in extra_state:
            logger.info("EMA initialised from the model weights of %s", filename)
            self.ema.restore(state["model"], build_fp32_params=self.cfg.ema.ema_fp32)
            return
        self.ema.restore(extra_state["ema"], build_fp32_params=False)
        if self.cfg.ema.ema_fp32:
            self.ema.build_fp32_params(extra_state.get("ema_fp32_params"))
