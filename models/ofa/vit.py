"""CLIP-style ViT image encoders (the ModelScope OFA port's ``vit_*``), returning a patch feature map.

Not timm's CLIP ViTs: the port runs no class token through the blocks (its position table keeps an unused
class slot) and has no final norm, and its checkpoints use these module names, so they load as they are.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import LayerNorm

from .layers import ActivationCheckpointing, DropPath

# name: (input resolution, patch size, width, layers, heads)
VIT_CONFIGS = {
    "vit_base": (224, 16, 768, 9, 12),
    "vit_large": (224, 14, 1024, 18, 16),
    "vit_large_336": (336, 14, 1024, 18, 16),
    "vit_huge": (224, 14, 1280, 24, 16),
}


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); inputs are (L, B, D)."""

    def __init__(self, width: int, heads: int, drop_path_rate: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = LayerNorm(width)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """The blocks in order; ``run_block`` may checkpoint each (``--checkpoint-activations``)."""

    def __init__(self, width: int, layers: int, heads: int, drop_path_rate: float = 0.0,
                 run_block: Optional[ActivationCheckpointing] = None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, drop_path_rate) for _ in range(layers)])
        self.run_block = run_block or ActivationCheckpointing()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = self.run_block(block, x)
        return x


class VisionTransformer(nn.Module):
    """Bias-free conv patchify, learned positions (slot 0 is CLIP's unused class position), ln_pre, blocks.

    Other resolutions get bilinearly resampled positions. Output: (B, width, H/patch, W/patch).
    """

    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 drop_path_rate: float = 0.0, run_block: Optional[ActivationCheckpointing] = None):
        super().__init__()
        self.input_resolution = input_resolution
        self.patch_size = patch_size
        self.width = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.positional_embedding = nn.Parameter(width ** -0.5 * torch.randn((input_resolution // patch_size) ** 2 + 1,
                                                                             width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, drop_path_rate, run_block)

    def patch_positions(self, height: int, width: int) -> torch.Tensor:
        grid = self.input_resolution // self.patch_size
        positions = self.positional_embedding[1:]
        if (height, width) == (grid, grid):
            return positions
        positions = positions.reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        positions = F.interpolate(positions, size=(height, width), mode="bilinear")
        return positions.permute(0, 2, 3, 1).reshape(height * width, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        bsz, channels, height, width = x.shape
        x = x.flatten(2).permute(0, 2, 1)
        x = self.ln_pre(x + self.patch_positions(height, width).to(x.dtype))
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return x.transpose(1, 2).reshape(bsz, channels, height, width)


def build_vit(vit_type: str, drop_path_rate: float = 0.0,
              run_block: Optional[ActivationCheckpointing] = None) -> VisionTransformer:
    """Build the ViT named by ``--vit-type``; ``run_block`` may checkpoint its blocks."""
    if vit_type not in VIT_CONFIGS:
        raise ValueError(f"unknown --vit-type {vit_type!r}; choose one of {', '.join(VIT_CONFIGS)}")
    return VisionTransformer(*VIT_CONFIGS[vit_type], drop_path_rate=drop_path_rate, run_block=run_block)
