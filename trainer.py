"""fairseq's :class:`~fairseq.trainer.Trainer` with what the original OFA changed in its fairseq fork.

- checkpoints load weights-only (torch >= 2.6) with one-line errors and are written atomically;
- EMA: integer buffers (relative-position buckets) are copied, not averaged; the EMA starts from the initial
  weights; ``--use-ema-weights-to-init-param`` and ``--use-latest-weights-to-init-ema``;
- ``lr_reinit`` for ``polynomial_decay --warmup-ratio``;
- data parallel training on CPU (gloo) as well as GPU;
- ``--skip-bad-rows``: totals per epoch and file, batches without a usable row are no-ops (:class:`SkipBadRowsMixin`);
- ``--ddp-backend fully_sharded`` on PyTorch's FSDP2 (``fully_shard``) instead of fairscale, saving and loading
  the same full checkpoints as data parallel runs.
"""
import collections
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field, fields
from itertools import chain
from typing import Iterable, List, Optional

import torch
import torch.distributed as dist
from fairseq import optim, utils
from fairseq import trainer as fairseq_trainer
from fairseq.dataclass import FairseqDataclass
from fairseq.distributed import utils as distributed_utils
from fairseq.distributed import ModuleProxyWrapper
from fairseq.logging import meters, metrics
from fairseq.models.ema import EMA
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.optim.fp16_optimizer import MemoryEfficientFP16Optimizer
from fairseq.optim.lr_scheduler import build_lr_scheduler
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from data.file_dataset import take_skipped
from utils import precision
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
    """``--fp16`` needs CUDA, ``--bf16`` a GPU with bfloat16; say so instead of failing deep in torch.
    ``--amp`` works everywhere (bfloat16 autocast on CPU)."""
    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    if (cfg.common.fp16 or cfg.common.memory_efficient_fp16) and not use_cuda:
        raise TrainingSetupError("--fp16 needs a CUDA device; none is in use here (use --amp for bfloat16 "
                                 "autocast on CPU, or train in fp32 without --fp16)")
    if (cfg.common.bf16 or cfg.common.memory_efficient_bf16) and not (use_cuda and torch.cuda.is_bf16_supported()):
        raise TrainingSetupError("--bf16 needs a CUDA device with bfloat16 support; none is in use here "
                                 "(use --amp for bfloat16 autocast)")


# ---- --skip-bad-rows ---------------------------------------------------------------------------------------------

class SkipBadRowsMixin:
    """For a fairseq ``Trainer``: skipped-row totals and no-op updates for batches without a usable row.

    A dataset returns a :class:`SkippedRow` for a row it cannot use; its collater leaves the row out and lists it
    under ``batch["skipped_rows"]``, so the count is right however many DataLoader workers read the rows and
    however often a row is read (fairseq reads the first batch twice). :class:`SkipBadRowsMixin` takes the list
    out of every batch before the model sees it, logs the totals per epoch and file, and turns a batch whose rows
    were all skipped into a no-op on every rank.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skipped_rows = collections.defaultdict(set)  # (split, path) -> rows skipped since the last report
        self._dummy_source = None  # the dataset of the latest iterator, to find a usable dummy batch in

    def _take_skipped(self, sample, split: str):
        sample, skipped = take_skipped(sample)
        for row in skipped:
            self._skipped_rows[(split, row.path)].add(row.row)
        return sample

    def _skip_bad_rows(self) -> bool:
        return bool(getattr(getattr(self.task, "cfg", None), "skip_bad_rows", False))

    def _rows_on_any_rank(self, samples: list) -> bool:
        count = torch.tensor([sum(1 for s in samples if s)], dtype=torch.long, device=self.device)
        if self.data_parallel_world_size > 1:
            distributed_utils.all_reduce(count, group=self.data_parallel_process_group)
        return count.item() > 0

    def reset_dummy_batch(self, batch):
        # the batch fairseq substitutes for an empty one needs real rows: keep the previous one rather than a
        # first batch whose rows were all skipped
        batch, _ = take_skipped(batch)
        if batch or self._dummy_batch is None:
            super().reset_dummy_batch(batch)

    def _ensure_dummy_batch(self, samples: list) -> None:
        if all(samples) or (self._dummy_batch and self._dummy_batch != "DUMMY"):
            return
        dataset = self._dummy_source
        for index in range(len(dataset) if dataset is not None else 0):
            batch, _ = take_skipped(dataset.collater([dataset[index]]))
            if batch:
                self._dummy_batch = batch
                return
        where = getattr(getattr(dataset, "dataset", None), "file_path", "the data")
        raise ValueError(f"--skip-bad-rows: every row of {where} read by this process is bad")

    def get_train_iterator(self, *args, **kwargs):
        itr = super().get_train_iterator(*args, **kwargs)
        self._dummy_source = itr.dataset
        return itr

    def get_valid_iterator(self, *args, **kwargs):
        itr = super().get_valid_iterator(*args, **kwargs)
        self._dummy_source = itr.dataset
        return itr

    def train_step(self, samples, raise_oom=False):
        samples = [self._take_skipped(s, "train") for s in samples]
        if self._skip_bad_rows():
            if not self._rows_on_any_rank(samples):
                logger.warning("no usable row in this update's batches on any rank (--skip-bad-rows): no update")
                return None
            if self.data_parallel_world_size == 1:
                samples = [s for s in samples if s]  # nothing to keep in step with
            self._ensure_dummy_batch(samples)
        return super().train_step(samples, raise_oom)

    def valid_step(self, sample, raise_oom=False):
        sample = self._take_skipped(sample, "valid")
        if self._skip_bad_rows():
            if not self._rows_on_any_rank([sample]):
                return None
            self._ensure_dummy_batch([sample])
        return super().valid_step(sample, raise_oom)

    def log_skipped_rows(self, split: str, when: str) -> int:
        """Log (and forget) how many rows of ``split`` all ranks skipped since the last call, per file."""
        if not self._skip_bad_rows():
            return 0
        rows = {path: sorted(r) for (s, path), r in self._skipped_rows.items() if s == split}
        for key in [key for key in self._skipped_rows if key[0] == split]:
            del self._skipped_rows[key]
        if self.data_parallel_world_size > 1:
            # a union, not a sum: a row read by two ranks (a slice padded to even length) counts once
            # (fairseq's all_gather_list stages through a CUDA buffer: it fails on CPU ranks)
            parts = [None] * self.data_parallel_world_size
            dist.all_gather_object(parts, rows, group=self.data_parallel_process_group)
            merged = collections.defaultdict(set)
            for part in parts:
                for path, r in part.items():
                    merged[path].update(r)
            rows = merged
        counts = {path: len(r) for path, r in rows.items()}
        total = sum(counts.values())
        if total and self.is_data_parallel_master:  # once, not once per rank
            per_file = ", ".join(f"{path}: {count}" for path, count in sorted(counts.items()))
            logger.warning("%s: skipped %d bad row(s) (--skip-bad-rows): %s", when, total, per_file)
        return total


# ---- fully sharded data parallel (FSDP2) ------------------------------------------------------------------------

FULLY_SHARDED = "fully_sharded"


def fsdp_mixed_precision(cfg) -> MixedPrecisionPolicy:
    """fairseq's precision flags as FSDP2's policy. The sharded fp32 parameters are the master weights (no
    fairseq FP16Optimizer copies): ``--bf16``/``--fp16`` all-gather and compute in bfloat16/float16 and reduce
    gradients in fp32; ``--amp`` all-gathers fp32 weights and autocasts the forward, as without FSDP."""
    common = cfg.common
    if common.fp16 or common.memory_efficient_fp16:
        return MixedPrecisionPolicy(param_dtype=torch.float16, reduce_dtype=torch.float32)
    if common.bf16 or common.memory_efficient_bf16:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def check_fully_sharded_supported(cfg) -> None:
    """Refuse the options that FSDP here does not support, naming the flag."""
    if cfg.distributed_training.distributed_world_size < 2:
        raise TrainingSetupError("--ddp-backend fully_sharded needs several processes (torchrun --nproc_per_node N)")
    if cfg.ema.store_ema:
        raise TrainingSetupError("--store-ema is not supported with --ddp-backend fully_sharded (the EMA would be a "
                                 "full unsharded copy of the model on every rank): drop --store-ema and the --ema-* "
                                 "options, or train with --ddp-backend c10d if the model fits on one GPU")
    refused = [("--zero-sharding", cfg.distributed_training.zero_sharding != "none"),
               ("--use-sharded-state", cfg.distributed_training.use_sharded_state),
               ("--cpu-offload", cfg.distributed_training.cpu_offload),
               ("--use-bmuf", cfg.optimization.use_bmuf)]
    for flag, given in refused:
        if given:
            raise TrainingSetupError(f"{flag} is not supported with --ddp-backend fully_sharded")


def fsdp_units(model: torch.nn.Module) -> List[torch.nn.Module]:
    """The modules sharded as units of their own: the image backbone and every encoder and decoder layer. The
    rest (embeddings shared by encoder and decoder, position tables, layer norms) belongs to the root unit."""
    encoder, decoder = model.encoder, model.decoder
    image_backbone = [encoder.embed_images] if getattr(encoder, "embed_images", None) is not None else []
    return [*image_backbone, *encoder.layers, *decoder.layers]


def unit_policy(unit: torch.nn.Module, mp_policy: MixedPrecisionPolicy) -> MixedPrecisionPolicy:
    """``mp_policy``, except that a unit with BatchNorm (the ResNets) computes in fp32 and hands its output on in
    the compute dtype: FSDP casts parameters, not the fp32 running statistics that BatchNorm needs alike."""
    has_batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in unit.modules())
    if mp_policy.param_dtype is None or not has_batch_norm:
        return mp_policy
    return MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32,
                                output_dtype=mp_policy.param_dtype)


def shard_model(model: torch.nn.Module, mesh: DeviceMesh, mp_policy: MixedPrecisionPolicy) -> None:
    """``fully_shard`` each unit, then the model; parameters become DTensors sharded along dim 0 over ``mesh``."""
    for unit in fsdp_units(model):
        fully_shard(unit, mesh=mesh, mp_policy=unit_policy(unit, mp_policy))
    fully_shard(model, mesh=mesh, mp_policy=mp_policy)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor; a plain tensor itself."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def local_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the tensors (their local shards) held by this rank."""
    return sum(local_tensor(t).numel() * local_tensor(t).element_size() for t in tensors)


def clip_sharded_grad_norm_(params: Iterable[torch.Tensor], max_norm: float, group,
                            device: torch.device) -> torch.Tensor:
    """fairseq's ``clip_grad_norm_`` for sharded gradients: the squared norms of every rank's local shards sum
    to the squared norm of the full gradient, so all ranks clip with the same coefficient."""
    grads = [local_tensor(p.grad) for p in params if p.grad is not None]
    squared = torch.zeros((), dtype=torch.float32, device=device)
    for grad in grads:
        squared += torch.linalg.vector_norm(grad, dtype=torch.float32).square()
    dist.all_reduce(squared, group=group)
    total_norm = squared.sqrt()
    if max_norm > 0 and grads:
        torch._foreach_mul_(grads, (max_norm / (total_norm + 1e-6)).clamp_(max=1))
    return total_norm


def gather_full_optimizer_state(state: dict, on_this_rank: bool) -> Optional[dict]:
    """An optimizer ``state_dict`` whose sharded tensors are gathered in full (collective: every rank calls it);
    torch's layout, keyed by parameter index like a data parallel run's. Kept on CPU where ``on_this_rank``."""
    full_states = {}
    for index, entry in state["state"].items():
        full_entry = {}
        for key, value in entry.items():
            if isinstance(value, DTensor):
                value = value.full_tensor()
                value = value.cpu() if on_this_rank else None
            full_entry[key] = value
        full_states[index] = full_entry
    return {**state, "state": full_states} if on_this_rank else None


def shard_optimizer_state(state: dict, params: List[torch.Tensor]) -> dict:
    """A full optimizer ``state_dict`` (a data parallel run's or :func:`gather_full_optimizer_state`'s) with every
    per-parameter tensor cut to this rank's shard of its parameter (each rank holds the full dict: no traffic)."""
    sharded = {}
    for index, entry in state["state"].items():
        param = params[index]
        sharded[index] = {
            key: distribute_tensor(value.to(param.device), param.device_mesh, param.placements, src_data_rank=None)
            if isinstance(param, DTensor) and torch.is_tensor(value) and value.shape == param.shape else value
            for key, value in entry.items()
        }
    return {**state, "state": sharded}


@contextlib.contextmanager
def fairseq_casts_skipped(cfg):
    """Hide ``--bf16``/``--fp16`` from fairseq's Trainer constructor, which would cast the weights in place; under
    FSDP the fp32 shards are the master weights and the mixed-precision policy casts the copies it gathers."""
    bf16, fp16 = cfg.common.bf16, cfg.common.fp16
    cfg.common.bf16 = cfg.common.fp16 = False
    try:
        yield
    finally:
        cfg.common.bf16, cfg.common.fp16 = bf16, fp16


class ScaledAMPOptimizer(AMPOptimizer):
    """fairseq's AMPOptimizer, stepping the torch optimizer that ``clip_grad_norm`` unscaled. fairseq's steps its
    own wrapper, which the scaler has not seen unscaled, so with a loss scale other than 1 (float16 autocast) the
    gradients were divided by the scale twice."""

    def step(self):
        self.scaler.step(self.optimizer)
        self.scaler.update()


class Trainer(SkipBadRowsMixin, fairseq_trainer.Trainer):
    """Data parallel trainer; see the module docstring for what differs from fairseq's."""

    def __init__(self, cfg, task, model, criterion, quantizer=None):
        self._gathered_model_state = None
        self._state_bytes_logged = False
        check_precision_supported(cfg)  # before fairseq's setup, which fails obscurely (e.g. --bf16 implies --tpu)
        if cfg.distributed_training.ddp_backend == FULLY_SHARDED:
            check_fully_sharded_supported(cfg)
            with fairseq_casts_skipped(cfg):
                super().__init__(cfg, task, model, criterion, quantizer)
        else:
            super().__init__(cfg, task, model, criterion, quantizer)
        logger.info("training precision: %s", precision.training_precision(self.cfg.common, self.device.type))
        if self.cfg.ema.store_ema:
            self._build_ema()  # from the initial weights, not lazily after the first update

    def _checkpoint_option(self, name: str) -> bool:
        return bool(self.cfg.checkpoint.get(name, False))

    @property
    def is_fsdp(self) -> bool:
        """fairseq's fully_sharded code paths are fairscale's; FSDP2 is :attr:`fully_sharded`, handled here."""
        return False

    @property
    def fully_sharded(self) -> bool:
        return self.cfg.distributed_training.ddp_backend == FULLY_SHARDED

    @property
    def model(self):
        if self._wrapped_model is None and self.fully_sharded:
            # sharded at first use: load_checkpoint has put a checkpoint's full weights in by then
            mesh = DeviceMesh.from_group(self.data_parallel_process_group, device_type=self.device.type)
            shard_model(self._model, mesh, fsdp_mixed_precision(self.cfg))
            self._wrapped_model = self._model
            logger.info("fully sharded over %d ranks: %d units", self.data_parallel_world_size,
                        len(fsdp_units(self._model)) + 1)
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
        if not self.fully_sharded:
            super()._build_optimizer()
        else:
            # fairseq's FP16Optimizer flattens and copies the weights; the fp32 shards are the master weights here
            params = [p for p in chain(self.model.parameters(), self.criterion.parameters()) if p.requires_grad]
            if self.cfg.common.amp:
                self._optimizer = AMPOptimizer.build_optimizer(self.cfg, params)
            elif self.cfg.common.fp16:
                # loss scaling without copies, as fairseq does for its fairscale FSDP
                self._optimizer = MemoryEfficientFP16Optimizer.build_optimizer(self.cfg, params,
                                                                               allow_unsupported=True)
            else:
                self._optimizer = optim.build_optimizer(self.cfg.optimizer, params)
            self._lr_scheduler = build_lr_scheduler(self.cfg.lr_scheduler, self.optimizer)
            self._lr_scheduler.step_update(0)
        if isinstance(self._optimizer, AMPOptimizer):  # fairseq's scaler is CUDA float16's
            self._optimizer.__class__ = ScaledAMPOptimizer  # same state, the step fixed
            self._optimizer._grad_scaler = precision.amp_grad_scaler(
                self.device.type, self.cfg.common.fp16_init_scale, self.cfg.common.amp_scale_window or 2000)

    def clip_grad_norm(self, clip_norm):
        if not self.fully_sharded:
            return super().clip_grad_norm(clip_norm)
        # the loss scalers' steps of fairseq's AMPOptimizer/MemoryEfficientFP16Optimizer.clip_grad_norm around the
        # sharded norm; the non-finite checks agree on all ranks (the norm and, in DTensor's unscale, found_inf are
        # all-reduced), so every rank skips or takes the same steps
        optimizer = self.optimizer
        if isinstance(optimizer, AMPOptimizer):
            optimizer.scaler.unscale_(optimizer.optimizer)
        elif isinstance(optimizer, MemoryEfficientFP16Optimizer):
            optimizer._unscale_grads()  # the loss scale and fairseq's 1/sample_size, applied to the shards
        grad_norm = clip_sharded_grad_norm_(optimizer.params, clip_norm, self.data_parallel_process_group,
                                            self.device)
        if isinstance(optimizer, MemoryEfficientFP16Optimizer):
            optimizer.scaler.check_overflow(float(grad_norm))  # OverflowError: fairseq's train_step skips the update
        elif isinstance(optimizer, AMPOptimizer) and not torch.isfinite(grad_norm) \
                and optimizer.next_loss_scale <= optimizer.min_loss_scale:
            raise FloatingPointError(f"AMP: minimum loss scale reached ({optimizer.min_loss_scale}); the loss is "
                                     "probably exploding: restart, lower the learning rate or use fp32")
        return grad_norm

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

    def valid_step(self, sample, raise_oom=False):
        if not self.fully_sharded:
            return super().valid_step(sample, raise_oom)
        # generation calls the encoder and decoder directly, not the root's forward that gathers its weights
        self.model.unshard()
        try:
            return super().valid_step(sample, raise_oom)
        finally:
            self.model.reshard()

    def consolidate_optimizer(self):
        """With FSDP, gather the full model (and optimizer) state on rank 0: collective, so every rank calls it."""
        if not self.fully_sharded:
            return super().consolidate_optimizer()
        self._gathered_model_state = get_model_state_dict(
            self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        self._gathered_optim_state = None
        if not self.cfg.checkpoint.no_save_optimizer_state:
            self._gathered_optim_state = gather_full_optimizer_state(self.optimizer.state_dict(),
                                                                     self.is_data_parallel_master)

    def state_dict(self):
        state = super().state_dict()
        if self.fully_sharded:  # the data parallel layout: full tensors from consolidate_optimizer
            if self._gathered_model_state is None:
                raise RuntimeError("a fully sharded model's state is gathered by consolidate_optimizer() first")
            state["model"], self._gathered_model_state = self._gathered_model_state, None
        return state

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
        """Rank 0 reads the file (weights-only) and broadcasts it; a read error is raised on every rank."""
        state, error = None, None
        if self.data_parallel_rank == 0:
            try:
                state = load_checkpoint_to_cpu(filename)
            except (CheckpointError, OSError) as err:
                error = err
        if self.data_parallel_world_size > 1:
            # torch's own pickling between our ranks: fairseq's broadcast_object unpickles with torch.load, whose
            # weights-only default refuses the OmegaConf config that rank 0 has already loaded safely
            payload = [state, error]
            dist.broadcast_object_list(payload, group=self.data_parallel_process_group, group_src=0)
            state, error = payload
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
            if self.fully_sharded:
                last_optim_state = shard_optimizer_state(last_optim_state, list(self.optimizer.params))
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
