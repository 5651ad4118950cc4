"""Int8 dynamic quantization for CPU inference (``--quantize int8`` in evaluate.py, predict.py and serve.py)."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from utils.cli import QUANTIZE_CHOICES


def quantize_for_inference(model: nn.Module, mode: str | None) -> nn.Module:
    """``model`` with the Linear layers of its encoder and decoder layers in int8 (weights quantized once,
    activations per batch), in place; ``none`` leaves it as it is.

    The image backbone (convolutions), the embeddings and the output projection tied to them stay in float: the
    projection's weight is also read as a tensor (constrained decoding slices its rows)."""
    if mode in (None, "none"):
        return model
    if mode != "int8":
        raise ValueError(f"--quantize: unknown mode {mode!r} (choose from {', '.join(QUANTIZE_CHOICES)})")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("--quantize int8 runs on CPU: add --cpu")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("--quantize int8 quantizes an fp32 model: drop --fp16/--bf16")
    model.eval()
    with warnings.catch_warnings():
        # torch.ao.quantization's eager-mode API is deprecated in favour of torchao, which is not a dependency
        warnings.simplefilter("ignore")
        for stack in (model.encoder, model.decoder):
            for layer in stack.layers:
                torch.ao.quantization.quantize_dynamic(layer, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model
