"""What this machine can train with, and fairseq's ``--amp`` step made right for any loss scale and device."""
import torch
from fairseq.optim.amp_optimizer import AMPOptimizer

from utils import precision


class TrainingSetupError(ValueError):
    """A configuration this machine cannot train with (e.g. ``--fp16`` without a GPU); one line for the user."""


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


class ScaledAMPOptimizer(AMPOptimizer):
    """fairseq's AMPOptimizer, stepping the torch optimizer that ``clip_grad_norm`` unscaled. fairseq's steps its
    own wrapper, which the scaler has not seen unscaled, so with a loss scale other than 1 (float16 autocast) the
    gradients would be divided by the scale twice."""

    def step(self):
        self.scaler.step(self.optimizer)
        self.scaler.update()


def fix_amp_optimizer(optimizer, device_type: str, common_cfg) -> None:
    """Make a built AMPOptimizer a :class:`ScaledAMPOptimizer` with a grad scaler for ``device_type`` (fairseq's
    scaler is CUDA float16's); other optimizers are left as they are."""
    if not isinstance(optimizer, AMPOptimizer):
        return
    # fairseq builds the optimizer in Trainer._build_optimizer with no hook for the class: same state, our step
    optimizer.__class__ = ScaledAMPOptimizer
    optimizer._grad_scaler = precision.amp_grad_scaler(device_type, common_cfg.fp16_init_scale,
                                                       common_cfg.amp_scale_window or 2000)
