"""The ResNet image backbone of OFA: a stem plus the first three bottleneck stages."""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ActivationCheckpointing, DropPath

# Bottleneck blocks per stage for each ``--resnet-type`` (only three stages are used).
RESNET_LAYERS = {
    "resnet18": (2, 2, 2),
    "resnet34": (3, 4, 6),
    "resnet50": (3, 4, 6),
    "resnet101": (3, 4, 23),
    "resnet152": (3, 8, 36),
}
RESNET_OUT_CHANNELS = 1024


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that always uses its running statistics and never trains.

    Keeps the state-dict layout of ``nn.BatchNorm2d`` so released checkpoints load strictly.
    """

    def __init__(self, num_features: int, **kwargs):
        super().__init__(num_features, **kwargs)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv) with optional drop path."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d, drop_path_rate: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate, batch_dim=0) if drop_path_rate > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(identity + self.drop_path(out))


class ResNet(nn.Module):
    """Stem + three bottleneck stages; maps (B, 3, H, W) to (B, 1024, H/16, W/16)."""

    def __init__(self, layers: tuple[int, int, int], norm_layer: Optional[Callable[[int], nn.Module]] = None,
                 drop_path_rate: float = 0.0, run_block: Optional[ActivationCheckpointing] = None):
        super().__init__()
        self.run_block = run_block or ActivationCheckpointing()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1, norm_layer, drop_path_rate)
        self.layer2 = self._make_layer(128, layers[1], 2, norm_layer, drop_path_rate)
        self.layer3 = self._make_layer(256, layers[2], 2, norm_layer, drop_path_rate)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int, norm_layer, drop_path_rate: float) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                                       norm_layer(out))
        # The first block of a stage never drops its path; later ones ramp up linearly.
        rates = torch.linspace(0, drop_path_rate, blocks, device="cpu").tolist()
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, norm_layer)]
        self.inplanes = out
        layers += [Bottleneck(out, planes, norm_layer=norm_layer, drop_path_rate=rates[i]) for i in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last convolutions are faster on CPU with the same results up to float rounding; the
        # (B, H*W, C) patch sequence the encoder reads is then a free view
        x = x.contiguous(memory_format=torch.channels_last)
        # checkpointed block by block, not stage by stage: recomputing a whole stage in backward would hold all
        # its activations at once
        x = self.run_block.call(self._stem, self.bn1, x)
        for stage in (self.layer1, self.layer2, self.layer3):
            for block in stage:
                x = self.run_block(block, x)
        return x

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def build_resnet(resnet_type: str, freeze_bn: bool = False, sync_bn: bool = False,
                 drop_path_rate: float = 0.0, run_block: Optional[ActivationCheckpointing] = None) -> ResNet:
    """Build the backbone named by ``--resnet-type``; ``run_block`` may checkpoint its stem and blocks."""
    if resnet_type not in RESNET_LAYERS:
        raise ValueError(f"unknown --resnet-type {resnet_type!r}; choose one of {', '.join(RESNET_LAYERS)}")
    if sync_bn:
        # The original builds its synchronised BatchNorm with eps=1e-3.
        norm_layer = partial(nn.SyncBatchNorm, eps=1e-3)
    elif freeze_bn:
        norm_layer = FrozenBatchNorm2d
    else:
        norm_layer = nn.BatchNorm2d
    return ResNet(RESNET_LAYERS[resnet_type], norm_layer=norm_layer, drop_path_rate=drop_path_rate,
                  run_block=run_block)
