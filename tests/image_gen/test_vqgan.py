"""Gumbel VQGAN: taming's module names, loading the original's two files, codes <-> images."""
import os

import pytest
import torch

from models.vqgan import GumbelVQ, load_vqgan


def test_state_dict_uses_taming_names(vqgan_files):
    keys = set(load_vqgan(*vqgan_files).state_dict())
    for key in ("encoder.conv_in.weight", "encoder.down.0.block.0.norm1.weight",
                "encoder.down.0.downsample.conv.weight", "encoder.down.3.attn.0.q.weight",
                "encoder.mid.attn_1.proj_out.weight", "encoder.mid.block_2.conv2.bias",
                "encoder.norm_out.weight", "quant_conv.weight", "quantize.proj.weight", "quantize.embed.weight",
                "post_quant_conv.weight", "decoder.conv_in.weight", "decoder.up.3.block.1.norm2.weight",
                "decoder.up.3.attn.1.k.weight", "decoder.up.1.upsample.conv.weight", "decoder.conv_out.weight"):
        assert key in keys, key
    assert not any(".temb" in key or "up.0.upsample" in key or "down.3.downsample" in key for key in keys)


def test_loads_lightning_checkpoint_and_round_trips_shapes(vqgan_files, code_image_size):
    vqgan = load_vqgan(*vqgan_files)
    assert not vqgan.training and not any(p.requires_grad for p in vqgan.parameters())
    codes = torch.randint(0, 8192, (2, (code_image_size // 8) ** 2))
    images = vqgan.decode_codes(codes)
    assert images.shape == (2, 3, code_image_size, code_image_size) and torch.isfinite(images).all()
    side = code_image_size // 8
    assert torch.equal(images, vqgan.decode_code(codes.view(2, side, side)))  # the original's entry point

    encoded = vqgan.encode_images(images.clamp(-1, 1))
    assert encoded.shape == codes.shape and encoded.dtype == torch.long
    assert 0 <= int(encoded.min()) and int(encoded.max()) < 8192
    # deterministic by default: the most likely code at each position
    logits = vqgan.quantize.proj(vqgan.quant_conv(vqgan.encoder(images.clamp(-1, 1))))
    assert torch.equal(encoded, logits.argmax(dim=1).flatten(1))
    # sample=True draws codes as taming's own encoder does (Gumbel noise even in eval mode)
    sampled = vqgan.encode_images(images.clamp(-1, 1), sample=True)
    assert sampled.shape == codes.shape and 0 <= int(sampled.min()) and int(sampled.max()) < 8192


def test_decode_rejects_bad_codes(vqgan_files):
    vqgan = load_vqgan(*vqgan_files)
    with pytest.raises(ValueError, match="side \\* side"):
        vqgan.decode_codes(torch.zeros(1, 15, dtype=torch.long))
    with pytest.raises(ValueError, match="codes must lie in"):
        vqgan.decode_codes(torch.full((1, 16), 8192))


def test_missing_and_mismatched_files_are_named(tmp_path, vqgan_files, write_vqgan):
    ckpt, config = vqgan_files
    with pytest.raises(FileNotFoundError, match="VQGAN checkpoint not found: .*nope.ckpt"):
        load_vqgan(tmp_path / "nope.ckpt", config)
    with pytest.raises(FileNotFoundError, match="VQGAN config not found: .*nope.yaml"):
        load_vqgan(ckpt, tmp_path / "nope.yaml")

    tiny = write_vqgan.__defaults__[0]
    wider = {**tiny, "ddconfig": {**tiny["ddconfig"], "ch": 64}}
    other_ckpt, _ = write_vqgan(tmp_path / "other", params=wider)
    with pytest.raises(ValueError, match="does not match"):
        load_vqgan(other_ckpt, config)

    _, vq_config = write_vqgan(tmp_path / "vq", target="taming.models.vqgan.VQModel")
    with pytest.raises(ValueError, match="only the Gumbel VQGAN"):
        load_vqgan(ckpt, vq_config)

    torch.save({"model": {}}, tmp_path / "weights_only.pt")
    with pytest.raises(ValueError, match="'state_dict' entry"):
        load_vqgan(tmp_path / "weights_only.pt", config)


class _RunsCode:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoint_objects_are_never_executed(tmp_path, vqgan_files):
    ckpt, config = vqgan_files
    checkpoint = torch.load(ckpt, weights_only=False)
    marker = tmp_path / "executed"
    checkpoint["callbacks"] = {"evil": _RunsCode(marker)}
    torch.save(checkpoint, tmp_path / "last.ckpt")
    vqgan = load_vqgan(tmp_path / "last.ckpt", config)
    assert not marker.exists()
    assert isinstance(vqgan, GumbelVQ)
