"""Choice of the image encoder: ResNet (default), CLIP-style ViT, or any timm model."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ActivationCheckpointing
from .resnet import RESNET_LAYERS, RESNET_OUT_CHANNELS, build_resnet
from .vit import VIT_CONFIGS, build_vit

# The original names its CLIP ViT-B/16 encoder as a --resnet-type.
VIT_ALIASES = {"ViT-B/16": "vit_base"}
IMAGE_BACKBONES = list(RESNET_LAYERS) + list(VIT_ALIASES) + list(VIT_CONFIGS)


class TimmBackbone(nn.Module):
    """The last feature map of a timm model (``features_only``); weights from a local file if given."""

    def __init__(self, name: str, drop_path_rate: float = 0.0):
        super().__init__()
        import timm

        kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
        try:
            self.model = timm.create_model(name, pretrained=False, features_only=True, out_indices=(-1,), **kwargs)
        except RuntimeError as err:  # timm's "Unknown model" / unsupported features_only
            raise ValueError(f"--timm-backbone {name!r}: {err}") from err
        self.out_channels = self.model.feature_info.channels()[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))[-1]  # faster convolutions, as the ResNet


def load_backbone_weights(module: nn.Module, path: str) -> None:
    """Load a plain state dict into the image encoder, with a clear error when it does not fit.

    A timm model's full state dict also holds its classifier, which ``features_only`` drops: ignored.
    """
    if isinstance(module, TimmBackbone):
        module, strict = module.model, False
    else:
        strict = True
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read image-encoder weights {path}: {err}") from err
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    expected = module.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state and strict]
    problems += [f"unexpected {k}" for k in state if k not in expected and strict]
    problems += [f"{k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
                 for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if problems:
        raise RuntimeError(f"image-encoder weights {path} do not fit: {problems[0]} ({len(problems)} problems)")
    module.load_state_dict(state, strict=strict)


def vit_type_of(args) -> str | None:
    """The ViT chosen by ``--vit-type`` or a ViT ``--resnet-type`` alias (None: a ResNet or timm encoder)."""
    return args.vit_type or VIT_ALIASES.get(args.resnet_type)


def build_image_backbone(args) -> tuple[nn.Module, int]:
    """The encoder chosen by ``--timm-backbone``, ``--vit-type`` or ``--resnet-type``, and its output channels."""
    drop_path_rate = args.resnet_drop_path_rate
    if args.timm_backbone:
        backbone = TimmBackbone(args.timm_backbone, drop_path_rate)
        return backbone, backbone.out_channels
    vit_type = vit_type_of(args)
    checkpointing = ActivationCheckpointing(args.checkpoint_activations, args.offload_activations)
    if vit_type:
        backbone, channels = build_vit(vit_type, drop_path_rate, run_block=checkpointing), VIT_CONFIGS[vit_type][2]
    else:
        backbone = build_resnet(args.resnet_type, freeze_bn=args.freeze_resnet, sync_bn=args.sync_bn,
                                drop_path_rate=drop_path_rate, run_block=checkpointing)
        channels = RESNET_OUT_CHANNELS
    return backbone, channels
