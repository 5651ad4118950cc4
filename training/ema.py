"""The EMA of the model weights as the original's fork keeps it: built from the initial weights, integer buffers
copied rather than averaged, and the checkpoint options that trade model and EMA weights at load time."""
import logging
from dataclasses import dataclass, field, fields
from typing import Optional

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.models.ema import EMA

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


EMA_INIT_OPTIONS = tuple(f.name for f in fields(EMAInitConfig) if not f.name.startswith("_"))


def checkpoint_option(cfg, name: str) -> bool:
    """An :class:`EMAInitConfig` option of the run (absent from configs built without train.py's parser)."""
    return bool(cfg.checkpoint.get(name, False))


def integer_state_keys(model: torch.nn.Module) -> set:
    """State-dict entries that are not floating point (e.g. ``*_rp_bucket`` index tables): EMA copies them."""
    return {name for name, value in model.state_dict().items() if not torch.is_floating_point(value)}


def build_ema(model: torch.nn.Module, ema_cfg, device) -> EMA:
    """fairseq's EMA of ``model``'s current weights, integer buffers copied."""
    ema = EMA(model, ema_cfg, device, skip_keys=integer_state_keys(model))
    logger.info("EMA of the model weights initialised (decay %g)", ema_cfg.ema_decay)
    return ema


def initial_weights(cfg, state: dict, filename: str) -> dict:
    """The weights a checkpoint initialises the model with: its EMA's with --use-ema-weights-to-init-param."""
    extra_state = state["extra_state"]
    if not checkpoint_option(cfg, "use_ema_weights_to_init_param"):
        return state["model"]
    ema_weights: Optional[dict] = extra_state.get("ema_fp32_params", extra_state.get("ema"))
    if ema_weights is None:
        logger.warning("--use-ema-weights-to-init-param: %s holds no EMA weights; using its model weights", filename)
        return state["model"]
    logger.info("initialising the model from the EMA weights of %s", filename)
    return dict(ema_weights)


def restore_ema(ema: EMA, cfg, state: dict, filename: str) -> None:
    """Load a checkpoint's stored EMA, or its model weights with --use-latest-weights-to-init-ema (or none stored)."""
    extra_state = state["extra_state"]
    if checkpoint_option(cfg, "use_latest_weights_to_init_ema") or "ema" not in extra_state:
        logger.info("EMA initialised from the model weights of %s", filename)
        ema.restore(state["model"], build_fp32_params=cfg.ema.ema_fp32)
        return
    ema.restore(extra_state["ema"], build_fp32_params=False)
    if cfg.ema.ema_fp32:
        ema.build_fp32_params(extra_state.get("ema_fp32_params"))
