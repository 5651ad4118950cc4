"""ViT and timm image encoders, and the ViT-based ofa_6b architecture."""
import pytest
import torch

from models.ofa import build_ofa_model
from models.ofa.vit import VIT_CONFIGS, build_vit

SMALL = dict(encoder_embed_dim=64, decoder_embed_dim=64, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128,
             encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4)


def vit_params(resolution, patch, width, layers, heads):
    """Closed-form parameter count of a CLIP-style ViT without class token projection or head."""
    per_block = 12 * width * width + 13 * width
    return 3 * patch * patch * width + ((resolution // patch) ** 2 + 1) * width + 2 * width + layers * per_block


@pytest.mark.parametrize("vit_type", list(VIT_CONFIGS))
def test_vit_parameter_count_and_layout(vit_type):
    with torch.device("meta"):
        vit = build_vit(vit_type)
    assert sum(p.numel() for p in vit.parameters()) == vit_params(*VIT_CONFIGS[vit_type])
    names = set(vit.state_dict())
    assert {"conv1.weight", "positional_embedding", "ln_pre.weight", "transformer.resblocks.0.attn.in_proj_weight",
            "transformer.resblocks.0.mlp.c_fc.weight", "transformer.resblocks.0.ln_2.bias"} <= names
    assert "conv1.bias" not in names


@pytest.mark.parametrize("resolution", [224, 256])
def test_vit_output_shape_and_position_interpolation(resolution):
    torch.manual_seed(0)
    vit = build_vit("vit_base").eval()
    vit.transformer.resblocks = vit.transformer.resblocks[:1]  # one block is enough for shapes
    with torch.no_grad():
        out = vit(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, 768, resolution // 16, resolution // 16)
    assert torch.isfinite(out).all()
    if resolution == 224:  # native grid: positions used as they are
        assert torch.equal(vit.patch_positions(14, 14), vit.positional_embedding[1:])


def test_ofa_6b_architecture_on_meta_device():
    with torch.device("meta"):
        model = build_ofa_model("ofa_6b")
    args = model.args
    assert (args.encoder_embed_dim, args.encoder_ffn_embed_dim, args.encoder_attention_heads) == (2560, 10240, 32)
    assert (len(model.encoder.layers), len(model.decoder.layers)) == (36, 24)
    assert model.encoder.image_proj.weight.shape == (2560, 1280)
    count = sum(p.numel() for p in model.parameters())
    assert 6.0e9 < count < 6.1e9, count


@pytest.mark.parametrize("option", [dict(vit_type="vit_base"), dict(resnet_type="ViT-B/16")])
def test_ofa_with_vit_encoder_runs(option):
    model = build_ofa_model("ofa_tiny", **SMALL, **option).eval()
    src = torch.tensor([[0, 100, 200, 2]])
    with torch.no_grad():
        logits, _ = model(src, torch.tensor([4]), src, patch_images=torch.randn(1, 3, 64, 64),
                          patch_masks=torch.tensor([True]))
    assert logits.shape == (1, 4, 59457)
    assert model.encoder.image_proj.weight.shape == (64, 768)


def test_timm_backbone_trains():
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", **SMALL, timm_backbone="resnet18").train()
    assert model.encoder.image_proj.weight.shape == (64, 512)
    src = torch.tensor([[0, 100, 200, 2], [0, 300, 2, 1]])
    prev = torch.tensor([[0, 5, 6, 7], [0, 8, 9, 1]])
    target = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 1]])
    images = torch.randn(2, 3, 64, 64)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    backbone_before = next(model.encoder.embed_images.parameters()).clone()
    losses = []
    for _ in range(6):
        logits, _ = model(src, src.ne(1).sum(1), prev, patch_images=images, patch_masks=torch.tensor([True, True]))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.equal(next(model.encoder.embed_images.parameters()), backbone_before)


def test_unknown_image_encoders_are_clear_errors():
    with pytest.raises(ValueError, match="unknown --vit-type 'vit_tiny'"):
        build_ofa_model("ofa_tiny", **SMALL, vit_type="vit_tiny")
    with pytest.raises(ValueError, match="--timm-backbone 'no_such_net'"):
        build_ofa_model("ofa_tiny", **SMALL, timm_backbone="no_such_net")


@pytest.mark.parametrize("encoder", [dict(resnet_type="resnet18"), dict(vit_type="vit_base")])
def test_backbone_weights_path_survives_model_initialisation(tmp_path, encoder):
    source = build_ofa_model("ofa_tiny", **SMALL, **encoder)
    path = tmp_path / "backbone.pt"
    torch.save(source.encoder.embed_images.state_dict(), path)
    loaded = build_ofa_model("ofa_tiny", **SMALL, **encoder, resnet_model_path=str(path))
    for name, value in source.encoder.embed_images.state_dict().items():
        assert torch.equal(loaded.encoder.embed_images.state_dict()[name], value), name
    with pytest.raises(RuntimeError, match="do not fit"):
        build_ofa_model("ofa_tiny", **SMALL, resnet_type="resnet50", resnet_model_path=str(path))
