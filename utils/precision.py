"""Numeric precision of training and inference on any device (CPU or GPU).

- ``--amp`` (training): forward passes under autocast, in bfloat16 on CPUs and on GPUs that support it (same
  exponent range as fp32: no loss scaling needed), in float16 with a dynamic gradient scaler otherwise.
- ``--fp16``/``--bf16``/``--memory-efficient-fp16``: fairseq's meaning (the model itself in half precision).
- inference (``evaluate.py``): ``--bf16``/``--amp``/``--fp16`` cast the model once to the chosen dtype.
"""
from __future__ import annotations

import torch

# a scale this large never grows: bfloat16 autocast keeps a constant scale of 1 and only skips non-finite steps
_NEVER = 2 ** 30


def device_type_of(module: torch.nn.Module) -> str:
    """``"cuda"`` or ``"cpu"``: where ``module``'s parameters live (autocast needs the device type)."""
    param = next(module.parameters(), None)
    return "cpu" if param is None else param.device.type


def amp_dtype(device_type: str) -> torch.dtype:
    """The autocast dtype of ``--amp``: bfloat16 on CPU and on bfloat16-capable GPUs, else float16."""
    if device_type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def cpu_computes_bf16_natively() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), where ``--amp`` is faster than fp32;
    elsewhere bfloat16 is emulated and slower."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(supported and supported())


def autocast(device_type: str):
    """Autocast context of ``--amp`` for ``device_type``."""
    return torch.autocast(device_type=device_type, dtype=amp_dtype(device_type))


def amp_grad_scaler(device_type: str, init_scale: float, growth_interval: int = 2000) -> torch.amp.GradScaler:
    """The gradient scaler of ``--amp``: dynamic for float16; constant 1 for bfloat16 (still skips updates
    whose gradients are not finite, and backs off then, as fairseq's AMP does)."""
    if amp_dtype(device_type) is torch.bfloat16:
        return torch.amp.GradScaler(device_type, init_scale=1.0, growth_interval=_NEVER)
    return torch.amp.GradScaler(device_type, init_scale=init_scale, growth_interval=growth_interval)


def training_precision(common_cfg, device_type: str) -> str:
    """One phrase for the log: which precision a training run uses."""
    if common_cfg.memory_efficient_fp16:
        return "fp16 weights (memory-efficient, loss scaling)"
    if common_cfg.fp16:
        return "fp16 weights with fp32 master copies (loss scaling)"
    if common_cfg.memory_efficient_bf16:
        return "bf16 weights (memory-efficient)"
    if common_cfg.bf16:
        return "bf16 weights with fp32 master copies"
    if common_cfg.amp:
        dtype = amp_dtype(device_type)
        scaling = "no loss scaling" if dtype is torch.bfloat16 else "dynamic loss scaling"
        return f"amp: {str(dtype).replace('torch.', '')} autocast on {device_type}, fp32 weights, {scaling}"
    return "fp32"


def inference_dtype(common_cfg, device_type: str) -> torch.dtype:
    """The dtype ``evaluate.py`` casts the model to: ``--bf16``, ``--amp`` (as in training), ``--fp16`` (GPU only:
    CPU kernels lack float16)."""
    if common_cfg.bf16:
        return torch.bfloat16
    if common_cfg.amp:
        return amp_dtype(device_type)
    if common_cfg.fp16 and device_type == "cuda":
        return torch.float16
    return torch.float32


def cast_floats(sample, dtype: torch.dtype):
    """``sample`` with its float32 tensors (images) cast to ``dtype``; other tensors unchanged."""
    from fairseq import utils

    if dtype is torch.float32:
        return sample
    return utils.apply_to_sample(lambda t: t.to(dtype) if t.dtype is torch.float32 else t, sample)
