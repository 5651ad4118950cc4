"""``--ddp-backend fully_sharded`` on PyTorch's FSDP2 (``fully_shard``) instead of fairscale: which modules are
sharded and in which precision, the sharded gradient norm, and full (data parallel layout) model and optimizer
states for checkpoints, so sharded and unsharded runs save and load the same files.
"""
import contextlib
import logging
from itertools import chain
from typing import Iterable, List, Optional

import torch
import torch.distributed as dist
from fairseq import optim
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.optim.fp16_optimizer import MemoryEfficientFP16Optimizer
from fairseq.optim.lr_scheduler import build_lr_scheduler
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from training.precision import TrainingSetupError

logger = logging.getLogger(__name__)

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
    FSDP the fp32 shards are the master weights and the mixed-precision policy casts the copies it gathers.
    (fairseq's constructor has no option to leave the weights uncast: the config is edited for its duration.)"""
    bf16, fp16 = cfg.common.bf16, cfg.common.fp16
    cfg.common.bf16 = cfg.common.fp16 = False
    try:
        yield
    finally:
        cfg.common.bf16, cfg.common.fp16 = bf16, fp16


class FullyShardedMixin:
    """For a fairseq ``Trainer``: FSDP2 under ``--ddp-backend fully_sharded``; data parallel runs pass through.

    The model is sharded at first use (after a checkpoint's full weights are loaded), the optimizer steps the fp32
    shards (no fairseq FP16Optimizer copies), gradients are clipped by the sharded norm, and
    :meth:`consolidate_optimizer` gathers full states on rank 0 for :meth:`state_dict`.
    """

    def __init__(self, cfg, task, model, criterion, quantizer=None):
        self._gathered_model_state = None
        if cfg.distributed_training.ddp_backend == FULLY_SHARDED:
            check_fully_sharded_supported(cfg)
            with fairseq_casts_skipped(cfg):
                super().__init__(cfg, task, model, criterion, quantizer)
        else:
            super().__init__(cfg, task, model, criterion, quantizer)

    @property
    def is_fsdp(self) -> bool:
        """fairseq's own fully_sharded code paths are fairscale's: off; FSDP2 is :attr:`fully_sharded`."""
        return False

    @property
    def fully_sharded(self) -> bool:
        return self.cfg.distributed_training.ddp_backend == FULLY_SHARDED

    @property
    def model(self):
        # fairseq private: Trainer._model / _wrapped_model, the model and its lazily built wrapper
        if self._wrapped_model is None and self.fully_sharded:
            mesh = DeviceMesh.from_group(self.data_parallel_process_group, device_type=self.device.type)
            shard_model(self._model, mesh, fsdp_mixed_precision(self.cfg))
            self._wrapped_model = self._model
            logger.info("fully sharded over %d ranks: %d units", self.data_parallel_world_size,
                        len(fsdp_units(self._model)) + 1)
        return super().model

    def _build_optimizer(self):
        if not self.fully_sharded:
            return super()._build_optimizer()
        # fairseq's FP16Optimizer flattens and copies the weights; the fp32 shards are the master weights here
        params = [p for p in chain(self.model.parameters(), self.criterion.parameters()) if p.requires_grad]
        if self.cfg.common.amp:
            self._optimizer = AMPOptimizer.build_optimizer(self.cfg, params)
        elif self.cfg.common.fp16:
            # loss scaling without copies, as fairseq does for its fairscale FSDP
            self._optimizer = MemoryEfficientFP16Optimizer.build_optimizer(self.cfg, params, allow_unsupported=True)
        else:
            self._optimizer = optim.build_optimizer(self.cfg.optimizer, params)
        self._lr_scheduler = build_lr_scheduler(self.cfg.lr_scheduler, self.optimizer)
        self._lr_scheduler.step_update(0)

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
        self._gathered_optim_state = None  # fairseq private: what fairseq's state_dict() saves as the optimizer's
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
