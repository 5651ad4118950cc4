"""``--lr-scheduler polynomial_decay`` with the original OFA's ``--warmup-ratio`` (its fairseq fork's addition).

:func:`use_polynomial_decay_with_warmup_ratio` (called when the repository is imported as fairseq's
``--user-dir`` and by :func:`tasks.loading.register_ofa_components`) replaces fairseq's ``polynomial_decay``
registration by :class:`PolynomialDecayWithWarmupRatio`, as the original's fork does (the OFA run scripts use that
name with ``--warmup-ratio``); without ``--warmup-ratio`` it behaves exactly as fairseq's schedule. Importing
this module changes nothing.
"""
import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.optim.lr_scheduler import LR_SCHEDULER_DATACLASS_REGISTRY, LR_SCHEDULER_REGISTRY, FairseqLRScheduler
from fairseq.optim.lr_scheduler.polynomial_decay_schedule import (
    PolynomialDecayLRSchedule,
    PolynomialDecayLRScheduleConfig,
)
from hydra.core.config_store import ConfigStore
from omegaconf import II

logger = logging.getLogger(__name__)

SCHEDULER_NAME = "polynomial_decay"


@dataclass
class PolynomialDecayWithWarmupRatioConfig(PolynomialDecayLRScheduleConfig):
    # fairseq's float field defaults to an interpolation that its option parser turns into null, which then
    # fails validation; here null means --max-update
    total_num_update: Optional[float] = field(
        default=None,
        metadata={"help": "total number of updates over which to decay learning rate (default: --max-update)"},
    )
    max_update: int = II("optimization.max_update")
    warmup_ratio: float = field(
        default=0.0,
        metadata={"help": "warm up over this fraction of all updates (replaces --warmup-updates); with --max-epoch "
                          "all updates = sum over epochs of ceil(batches per epoch / update freq)"},
    )


class PolynomialDecayWithWarmupRatio(PolynomialDecayLRSchedule):
    """Linear warmup then polynomial decay; the warmup length may be a ratio of the total, known only once the
    training data is loaded (:meth:`reinit`)."""

    def __init__(self, cfg: PolynomialDecayWithWarmupRatioConfig, optimizer):
        FairseqLRScheduler.__init__(self, cfg, optimizer)
        if not 0.0 <= cfg.warmup_ratio < 1.0:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {cfg.warmup_ratio}")
        self.total_num_update = cfg.total_num_update or cfg.max_update
        if self.total_num_update <= 0 and cfg.warmup_ratio <= 0:
            raise ValueError("polynomial_decay needs the number of updates: set --max-update or --total-num-update")
        self.lr = cfg.lr[0]
        self.end_learning_rate = cfg.end_learning_rate
        self.power = cfg.power
        self.warmup_updates = cfg.warmup_updates
        if cfg.warmup_ratio > 0 and self.total_num_update > 0:
            self.warmup_updates = int(self.total_num_update * cfg.warmup_ratio)
        self.warmup_factor = 1.0 / self.warmup_updates if self.warmup_updates > 0 else 1.0
        self.optimizer.set_lr(self.warmup_factor * self.lr)

    def reinit(self, total_num_update: int, num_updates: int) -> None:
        """Recompute total and warmup updates once they are known (with ``--warmup-ratio`` only), at update
        ``num_updates``; called at start and after every checkpoint load, as the original does."""
        if self.cfg.warmup_ratio <= 0:
            return
        self.total_num_update = total_num_update
        self.warmup_updates = int(total_num_update * self.cfg.warmup_ratio)
        if num_updates > 0:
            self.warmup_factor = min(1.0, num_updates / float(self.warmup_updates)) if self.warmup_updates else 1.0
            self.step_update(num_updates)
        else:
            self.warmup_factor = 1.0 / self.warmup_updates if self.warmup_updates else 1.0
            self.optimizer.set_lr(self.warmup_factor * self.lr)
        logger.info("lr schedule: %d updates in total, %d warmup updates, warmup factor %g",
                    self.total_num_update, self.warmup_updates, self.warmup_factor)

    def step_update(self, num_updates: int) -> float:
        """The learning rate for the update following ``num_updates`` updates."""
        if self.warmup_updates > 0 and num_updates <= self.warmup_updates:
            self.warmup_factor = num_updates / float(self.warmup_updates)
            lr = self.warmup_factor * self.lr
        elif num_updates >= self.total_num_update:
            lr = self.end_learning_rate
        else:
            remaining = 1 - (num_updates - self.warmup_updates) / (self.total_num_update - self.warmup_updates)
            lr = (self.lr - self.end_learning_rate) * remaining ** self.power + self.end_learning_rate
        self.optimizer.set_lr(lr)
        return self.optimizer.get_lr()


def use_polynomial_decay_with_warmup_ratio() -> None:
    """Make ``--lr-scheduler polynomial_decay`` OFA's schedule with ``--warmup-ratio`` (idempotent; logged once).

    fairseq refuses a second registration of a name, so its registry entries are replaced directly.
    """
    if LR_SCHEDULER_REGISTRY.get(SCHEDULER_NAME) is PolynomialDecayWithWarmupRatio:
        return
    LR_SCHEDULER_REGISTRY[SCHEDULER_NAME] = PolynomialDecayWithWarmupRatio
    LR_SCHEDULER_DATACLASS_REGISTRY[SCHEDULER_NAME] = PolynomialDecayWithWarmupRatioConfig
    # fairseq's option parser and hydra read the dataclass from these two places
    setattr(PolynomialDecayWithWarmupRatio, "__dataclass", PolynomialDecayWithWarmupRatioConfig)
    node = PolynomialDecayWithWarmupRatioConfig()
    node._name = SCHEDULER_NAME
    ConfigStore.instance().store(name=SCHEDULER_NAME, group="lr_scheduler", node=node, provider="fairseq")
    logger.info("--lr-scheduler %s is OFA's %s (fairseq's schedule plus --warmup-ratio)", SCHEDULER_NAME,
                PolynomialDecayWithWarmupRatio.__name__)
