"""ViT and timm image encoders, the OFA-Sys layout (--use-ofasys) and the ViT-based ofa_6b architecture."""
import argparse

import pytest
import torch

from models.ofa import build_ofa_model
from models.ofa.backbone import build_image_backbone
from models.ofa.layers import ActivationCheckpointing
from models.ofa.vit import VIT_CONFIGS, VisionTransformer, build_vit

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


@pytest.mark.parametrize("vit_type", list(VIT_CONFIGS))
def test_every_vit_gives_a_width_channel_patch_grid(vit_type):
    resolution, patch, width, _, _ = VIT_CONFIGS[vit_type]
    with torch.device("meta"):  # shapes without computing
        vit = build_vit(vit_type)
        for size in (resolution, resolution + 2 * patch):  # native and interpolated position grids
            assert vit(torch.empty(2, 3, size, size)).shape == (2, width, size // patch, size // patch)


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
    assert args.use_ofasys and args.vit_type == "vit_huge"  # the layout of the released OFA-6B
    count = sum(p.numel() for p in model.parameters())
    assert count == 6_037_007_744, count


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


def ofasys_inputs(seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 1000, (2, 6), generator=generator)
    src[1, :2] = 1
    return dict(src_tokens=src, src_lengths=src.ne(1).sum(1), prev_output_tokens=torch.randint(4, 1000, (2, 4),
                                                                                               generator=generator),
                patch_images=torch.randn(2, 3, 64, 64, generator=generator), patch_masks=torch.tensor([True, False]))


def perturbed(model):
    """Every parameter moved off its initial constant (zero bias tables, unit layer norms)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.rand_like(param) * 0.1)
    return model.eval()


def outputs_after(model, edit) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        before = model(**ofasys_inputs())[0]
        edit(model)
        return before, model(**ofasys_inputs())[0]


@pytest.mark.parametrize("entangle", [False, True])
def test_ofasys_layout_tensors_and_what_they_feed(entangle):
    model = perturbed(build_ofa_model("ofa_tiny", **SMALL, vit_type="vit_base", use_ofasys=True,
                                      entangle_position_embedding=entangle))
    names = set(model.state_dict())
    assert "encoder.pos_ln.weight" not in names and "encoder.image_pos_ln.weight" in names
    assert model.decoder.type_embedding.weight.shape == (1, 64)
    assert not {"decoder.pos_ln.weight", "decoder.image_pos_ln.weight", "decoder.embed_image_positions.weight",
                "decoder.image_rel_pos_table_list.0.weight", "decoder.image_rp_bucket",
                "decoder.image_position_idx"} & names
    assert ("encoder.pos_q_linear.weight" in names) == (not entangle)
    assert ("decoder.self_pos_q_linear.weight" in names) == (not entangle)
    assert "decoder.cross_pos_q_linear.weight" in names

    # Stored but unused, as in the port: the encoder's image_pos_ln and the decoder's type embedding.
    def unused(m):
        m.encoder.image_pos_ln.weight.mul_(3)
        m.decoder.type_embedding.weight.add_(1)

    before, after = outputs_after(model, unused)
    assert torch.equal(before, after)
    # Positions enter the encoder without layer norm: scaling them changes the result.
    before, after = outputs_after(model, lambda m: m.encoder.embed_positions.weight.mul_(3))
    assert not torch.allclose(before, after)
    if entangle:  # no absolute-position projections: the cross-attention ones are stored but unused
        before, after = outputs_after(model, lambda m: m.decoder.cross_pos_q_linear.weight.mul_(3))
        assert torch.equal(before, after)


@pytest.mark.parametrize("options, added", [
    (dict(vit_type="vit_base", use_ofasys=True), False),
    (dict(vit_type="vit_base", use_ofasys=True, entangle_position_embedding=True), True),
    (dict(resnet_type="resnet18"), True),  # the original layout: unless --disable-entangle
])
def test_decoder_adds_token_positions_to_its_input(options, added):
    model = perturbed(build_ofa_model("ofa_tiny", **SMALL, **options))
    with torch.no_grad():  # no position biases: positions can then only reach the output through the input
        for name in ("self_pos_q_linear", "self_pos_k_linear", "cross_pos_q_linear", "cross_pos_k_linear"):
            if getattr(model.decoder, name) is not None:
                getattr(model.decoder, name).weight.zero_()
                getattr(model.decoder, name).bias.zero_()
    before, after = outputs_after(model, lambda m: m.decoder.embed_positions.weight.mul_(3))
    assert torch.equal(before, after) != added


def test_ofasys_decoder_refuses_image_codes():
    model = build_ofa_model("ofa_tiny", **SMALL, vit_type="vit_base", use_ofasys=True).eval()
    with pytest.raises(ValueError, match="no image-code positions"):
        model(**ofasys_inputs(), code_masks=torch.tensor([True, False]))



def _vit_loss_and_grads(checkpointing: ActivationCheckpointing, state=None):
    """Loss and gradients of one train-mode step of a small ViT (drop path on, RNG seeded), and how often its
    first block started (a recomputation may stop early, before the block returns)."""
    torch.manual_seed(0)
    vit = VisionTransformer(32, 8, 64, 3, 4, drop_path_rate=0.2, run_block=checkpointing).train()
    if state is not None:
        vit.load_state_dict(state)
    calls = []
    vit.transformer.resblocks[0].register_forward_pre_hook(lambda *_: calls.append(1))
    images = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    loss = vit(images).sin().mean()
    loss.backward()
    return vit.state_dict(), loss.detach(), {name: p.grad for name, p in vit.named_parameters()}, len(calls)


@pytest.mark.parametrize("offload", [False, True])
def test_vit_activation_checkpointing_gives_the_same_losses_and_gradients(offload):
    state, loss, grads, calls = _vit_loss_and_grads(ActivationCheckpointing())
    _, ckpt_loss, ckpt_grads, ckpt_calls = _vit_loss_and_grads(ActivationCheckpointing(not offload, offload), state)
    assert (calls, ckpt_calls) == (1, 2)  # each block is recomputed during backward
    assert torch.equal(ckpt_loss, loss)
    assert ckpt_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(ckpt_grads[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("flag", ["checkpoint_activations", "offload_activations"])
def test_vit_blocks_follow_the_checkpoint_flags(flag):
    flags = {"checkpoint_activations": False, "offload_activations": False, flag: True}
    args = argparse.Namespace(timm_backbone=None, vit_type="vit_base", resnet_type="resnet101",
                              resnet_drop_path_rate=0.0, **flags)
    vit, _ = build_image_backbone(args)
    assert vit.transformer.run_block.enabled and vit.transformer.run_block.offload == (flag == "offload_activations")
