"""Gumbel-softmax VQGAN (taming-transformers' ``GumbelVQ``): images <-> grids of codebook indices.

OFA writes images as ``<code_i>`` tokens of the f8 / 8192-code model: a 256x256 image is 32x32 = 1024 codes.
Loads the original's ``vqgan/last.ckpt`` (a PyTorch Lightning checkpoint) and ``vqgan/model.yaml``.
"""
from __future__ import annotations

import io
import math
import pickle
import types
from pathlib import Path
from typing import Any, Dict, Union

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from models.vqgan.modules import Decoder, Encoder

PathLike = Union[str, Path]


class GumbelQuantize(nn.Module):
    """Latent -> logits over the codebook (``proj``) -> one code per position -> its ``embed`` vector."""

    def __init__(self, num_hiddens: int, embedding_dim: int, n_embed: int, temperature: float = 1.0):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.n_embed = n_embed
        self.temperature = temperature
        self.proj = nn.Conv2d(num_hiddens, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embedding_dim)

    def forward(self, z: Tensor, sample: bool = False):
        """``(z_q, indices)`` for a latent (B, C, h, w); ``sample`` draws Gumbel codes as taming's own encoder does,
        otherwise each position takes its most likely code."""
        logits = self.proj(z)
        if sample:
            indices = F.gumbel_softmax(logits, tau=self.temperature, dim=1, hard=True).argmax(dim=1)
        else:
            indices = logits.argmax(dim=1)
        return self.get_codebook_entry(indices), indices

    def get_codebook_entry(self, indices: Tensor) -> Tensor:
        """Codebook vectors (B, embedding_dim, h, w) of indices (B, h, w)."""
        return self.embed(indices).permute(0, 3, 1, 2).contiguous()


class GumbelVQ(nn.Module):
    """Encoder, ``quant_conv``, Gumbel quantizer, ``post_quant_conv``, decoder; pixels in [-1, 1]."""

    def __init__(self, ddconfig: Dict[str, Any], n_embed: int, embed_dim: int, **unused):
        super().__init__()
        z_channels = ddconfig["z_channels"]
        if embed_dim != z_channels:
            # taming sizes the quantizer's input for z_channels but feeds it quant_conv's embed_dim channels
            raise ValueError(f"GumbelVQ needs embed_dim == ddconfig.z_channels, got {embed_dim} and {z_channels}")
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = GumbelQuantize(z_channels, embed_dim, n_embed)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

    def encode(self, images: Tensor, sample: bool = False):
        """``(z_q, indices (B, h, w))`` of images (B, 3, H, W) in [-1, 1]."""
        return self.quantize(self.quant_conv(self.encoder(images)), sample=sample)

    def decode(self, quant: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, codes: Tensor) -> Tensor:
        """Images (B, 3, 8h, 8w) in about [-1, 1] from code grids (B, h, w) (the original's name)."""
        return self.decode(self.quantize.get_codebook_entry(codes.long()))

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Images from flat square code sequences (B, N), e.g. OFA's 1024 codes -> 256x256 images."""
        side = math.isqrt(codes.size(-1))
        if codes.dim() != 2 or side * side != codes.size(-1):
            raise ValueError(f"expected codes of shape (batch, side * side), got {tuple(codes.shape)}")
        if codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < self.quantize.n_embed:
            raise ValueError(f"codes must lie in [0, {self.quantize.n_embed}), "
                             f"got [{int(codes.min())}, {int(codes.max())}]")
        return self.decode_code(codes.view(-1, side, side))

    def encode_images(self, images: Tensor, sample: bool = False) -> Tensor:
        """Flat code sequences (B, h * w) of images (B, 3, H, W) in [-1, 1]."""
        return self.encode(images, sample=sample)[1].flatten(1)


class _InertObject:
    """Stands in for any non-tensor object of a checkpoint that weights-only loading refuses (it is never used)."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _tensors_only_pickle_module() -> types.ModuleType:
    """A ``pickle`` replacement that resolves only the globals torch's weights-only loader allows; every other
    global (Lightning callbacks, hyper-parameter objects...) becomes an inert placeholder and no code runs."""
    from torch._weights_only_unpickler import _get_allowed_globals

    allowed = _get_allowed_globals()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            found = allowed.get(f"{module}.{name}")
            return found if found is not None else _InertObject

    module = types.ModuleType("tensors_only_pickle")
    module.Unpickler = Unpickler
    module.load = lambda file, **kwargs: Unpickler(file, **kwargs).load()
    module.loads = lambda data, **kwargs: Unpickler(io.BytesIO(data), **kwargs).load()
    return module


def load_lightning_state_dict(path: PathLike) -> Dict[str, Tensor]:
    """The ``state_dict`` of a PyTorch Lightning checkpoint, read without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VQGAN checkpoint not found: {path} "
                                "(--vqgan-model-path, e.g. checkpoints/vqgan/last.ckpt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Lightning checkpoints also pickle callback and hyper-parameter objects; only the tensors are needed
        checkpoint = torch.load(path, map_location="cpu", weights_only=False,
                                pickle_module=_tensors_only_pickle_module())
    except Exception as e:
        raise ValueError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    state_dict = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path}: expected a Lightning checkpoint with a 'state_dict' entry, found "
                         f"{sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__}")
    return state_dict


def load_vqgan_config(path: PathLike) -> Dict[str, Any]:
    """``model.params`` of a taming-transformers ``model.yaml``, checked to describe a Gumbel VQGAN."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VQGAN config not found: {path} "
                                "(--vqgan-config-path, e.g. checkpoints/vqgan/model.yaml)")
    with open(path) as f:
        config = yaml.safe_load(f)
    params = (config or {}).get("model", {}).get("params") if isinstance(config, dict) else None
    if not isinstance(params, dict) or not {"ddconfig", "n_embed", "embed_dim"} <= set(params):
        raise ValueError(f"{path}: expected taming's layout model.params.{{ddconfig, n_embed, embed_dim}}")
    target = config["model"].get("target", "GumbelVQ")
    if not target.endswith("GumbelVQ"):
        raise ValueError(f"{path}: model.target is {target!r}; only the Gumbel VQGAN (GumbelVQ) is supported")
    return params


def load_vqgan(model_path: PathLike, config_path: PathLike) -> GumbelVQ:
    """The frozen VQGAN (eval mode) from the original's ``last.ckpt`` and ``model.yaml``."""
    vqgan = GumbelVQ(**load_vqgan_config(config_path))
    # the training losses (discriminator, LPIPS) are stored under "loss."; decoding does not need them
    state_dict = {k: v for k, v in load_lightning_state_dict(model_path).items() if not k.startswith("loss.")}
    try:
        missing, unexpected = vqgan.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # tensor shapes differ from the config's
        raise ValueError(f"{model_path} does not match {config_path}: {e}") from None
    if missing or unexpected:
        raise ValueError(f"{model_path} does not match {config_path}: missing keys {missing[:5]}, "
                         f"unexpected keys {unexpected[:5]} ({len(missing)} / {len(unexpected)} in all)")
    vqgan.requires_grad_(False)
    return vqgan.eval()
