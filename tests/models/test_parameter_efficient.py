"""Prompt tuning, adapters and BitFit: what trains, what stays, and what the outputs do."""
import pytest
import torch

from models.ofa import build_ofa_model

SMALL = dict(encoder_embed_dim=64, decoder_embed_dim=64, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128,
             encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             resnet_type="resnet18")
PROMPTS = dict(encoder_prompt=True, decoder_prompt=True, encoder_prompt_length=5, decoder_prompt_length=3)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 1000, (2, 6), generator=g)
    src[:, 0], src[:, -1], src[1, -2:] = 0, 2, 1
    prev = torch.randint(4, 1000, (2, 5), generator=g)
    prev[:, 0] = 0
    return dict(src_tokens=src, src_lengths=src.ne(1).sum(1), prev_output_tokens=prev,
                patch_images=torch.randn(2, 3, 64, 64, generator=g), patch_masks=torch.tensor([True, False]))


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("options,expected", [
    (dict(encoder_prompt=True, encoder_prompt_length=5), lambda n: n.startswith("encoder.encoder_prompt_encoder.")),
    (dict(decoder_prompt=True, decoder_prompt_projection=True, decoder_prompt_length=3),
     lambda n: n.startswith("decoder.decoder_prompt_encoder.")),
    (dict(adapter=True, adapter_dim=8), lambda n: ".adapter." in n),
    (dict(bitfit=True), lambda n: n.endswith("bias") and ("layer_norm" in n or ".fc" in n)),
])
def test_only_tuned_parameters_require_grad(options, expected):
    model = build_ofa_model("ofa_tiny", **SMALL, **options)
    names = {name for name, _ in model.named_parameters()}
    want = {n for n in names if expected(n)}
    assert want, "the option added nothing to tune"
    assert trainable(model) == want


@pytest.mark.parametrize("options", [PROMPTS, dict(adapter=True, adapter_dim=8), dict(bitfit=True)],
                         ids=["prompts", "adapter", "bitfit"])
def test_updates_change_only_tuned_tensors(options):
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", **SMALL, **options).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    for _ in range(3):
        logits, _ = model(**batch())
        loss = logits.logsumexp(-1).mean() - logits[..., 5].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    tuned = trainable(model)
    for name, value in model.state_dict().items():
        changed = not torch.equal(value, before[name])
        if name in tuned:
            continue
        # BatchNorm running statistics move in train mode; they are buffers, not parameters.
        if "running_" in name or "num_batches_tracked" in name:
            continue
        assert not changed, f"{name} changed but is frozen"
    assert any(not torch.equal(model.state_dict()[n], before[n]) for n in tuned)


def test_new_adapters_leave_outputs_unchanged():
    torch.manual_seed(0)
    base = build_ofa_model("ofa_tiny", **SMALL).eval()
    tuned = build_ofa_model("ofa_tiny", **SMALL, adapter=True, adapter_dim=8).eval()
    missing, unexpected = tuned.load_state_dict(base.state_dict(), strict=False)
    assert all(".adapter." in k for k in missing) and missing and not unexpected
    with torch.no_grad():
        torch.testing.assert_close(tuned(**batch())[0], base(**batch())[0])


def test_prompts_change_outputs_and_decode_incrementally():
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", **SMALL, **PROMPTS).eval()
    base = build_ofa_model("ofa_tiny", **SMALL).eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if "prompt_encoder" not in k})
    b = batch()
    with torch.no_grad():
        assert not torch.allclose(model(**b)[0], base(**b)[0])
        enc = model.encoder(b["src_tokens"], b["src_lengths"], patch_images=b["patch_images"],
                            patch_masks=b["patch_masks"])
        full = model.decoder(b["prev_output_tokens"], encoder_out=enc)[0]
        state, steps = {}, []
        for t in range(1, 6):
            steps.append(model.decoder(b["prev_output_tokens"][:, :t], encoder_out=enc, incremental_state=state)[0])
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


def test_tuned_parameters_round_trip_through_a_checkpoint(tmp_path):
    model = build_ofa_model("ofa_tiny", **SMALL, **PROMPTS, adapter=True, adapter_dim=8)
    torch.save({"model": model.state_dict()}, tmp_path / "ckpt.pt")
    fresh = build_ofa_model("ofa_tiny", **SMALL, **PROMPTS, adapter=True, adapter_dim=8)
    fresh.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["model"], strict=True)
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
