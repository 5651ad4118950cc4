"""The OFA model: state-dict layout per arch, parameter counts, numeric parity and decoding invariants."""
import argparse
import json

import pytest
import torch

import models  # noqa: F401  (registers the model with fairseq)
from fairseq.models import ARCH_MODEL_REGISTRY
from models.ofa import ARCH_SIZES, OFAModel, build_ofa_model

SMALL = dict(encoder_embed_dim=64, decoder_embed_dim=64, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128,
             encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             resnet_type="resnet18")
NORMFORMER = dict(scale_attn=True, scale_fc=True, scale_heads=True)
# Parameter counts (millions, model.parameters()) of the original models.
PARAMS_M = {"ofa_tiny": 33.47, "ofa_medium": 92.85, "ofa_base": 182.14, "ofa_large": 472.71, "ofa_huge": 929.0}


def read_keys(path):
    rows = []
    for line in path.read_text().splitlines():
        name, shape, dtype = line.split("\t")
        rows.append((name, shape, dtype))
    return rows


def layout(model):
    return [(name, str(tuple(t.shape)), str(t.dtype).replace("torch.", "")) for name, t in model.state_dict().items()]


@pytest.fixture(scope="module")
def dictionary():
    from data.dictionary import load_ofa_dictionary
    return load_ofa_dictionary()


def test_dictionary_layout(dictionary):
    assert len(dictionary) == 59457
    assert (dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk()) == (0, 1, 2, 3)
    assert dictionary.index("<mask>") == 50264
    assert dictionary.index("<code_0>") == 50265 and dictionary.index("<bin_0>") == 50265 + 8192
    assert dictionary[len(dictionary) - 1] == "<bin_999>"


@pytest.mark.parametrize("arch", list(ARCH_SIZES))
@pytest.mark.parametrize("released", [False, True], ids=["defaults", "released"])
def test_state_dict_layout_matches_original(arch, released, shared, dictionary):
    """Names, shapes, dtypes and order equal the original's (meta device: nothing is allocated)."""
    suffix = "_released_keys" if released else "_keys"
    expected = read_keys(shared / "keys" / f"{arch}{suffix}.tsv")
    with torch.device("meta"):
        model = build_ofa_model(arch, dictionary=dictionary, **(NORMFORMER if released else {}))
    assert layout(model) == expected


@pytest.mark.parametrize("arch", list(ARCH_SIZES))
def test_parameter_count(arch, dictionary):
    with torch.device("meta"):
        model = build_ofa_model(arch, dictionary=dictionary)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - PARAMS_M[arch]) < 0.006, count


def load_parity(shared):
    fixture = torch.load(shared / "parity_small.pt", weights_only=True)
    cfg = json.loads(fixture["config"])
    overrides = {k: v for k, v in cfg.items() if k not in ("arch", "seed", "patch_image_size")}
    model = build_ofa_model(cfg["arch"], **overrides)
    state = {k: v.float() if v.is_floating_point() else v for k, v in fixture["state_dict"].items()}
    model.load_state_dict(state, strict=True)  # bucket tables are computed by the model itself
    return model.eval(), fixture


def test_parity_with_original_logits_and_encoder(shared):
    model, fixture = load_parity(shared)
    inputs, expected = fixture["inputs"], fixture["expected"]
    with torch.no_grad():
        enc = model.encoder(inputs["src_tokens"], inputs["src_lengths"], patch_images=inputs["patch_images"],
                            patch_masks=inputs["patch_masks"])
        logits, _ = model(**inputs)
    assert torch.equal(enc["encoder_padding_mask"][0], expected["encoder_padding_mask"])
    torch.testing.assert_close(enc["encoder_out"][0], expected["encoder_out"], atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, expected["logits"], atol=1e-4, rtol=0)


def random_model(seed=0, **overrides):
    """A small model with all weights perturbed so zero-initialised tables matter too."""
    torch.manual_seed(seed)
    model = build_ofa_model("ofa_tiny", **{**SMALL, **overrides}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def random_batch(bsz=3, src_len=6, tgt_len=7, image_size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 1000, (bsz, src_len), generator=g)
    src[:, 0], src[:, -1] = 0, 2
    src[-1, -2:] = 1  # padding
    prev = torch.randint(4, 1000, (bsz, tgt_len), generator=g)
    prev[:, 0] = 0
    images = torch.randn(bsz, 3, image_size, image_size, generator=g)
    masks = torch.ones(bsz, dtype=torch.bool)
    masks[-1] = False  # one sample without image
    return dict(src_tokens=src, src_lengths=src.ne(1).sum(1), prev_output_tokens=prev, patch_images=images,
                patch_masks=masks)


CONFIGS = {
    "defaults": {},
    "normformer": dict(NORMFORMER, scale_resids=True),
    "entangled": dict(entangle_position_embedding=True, disable_entangle=True),
    # ModelScope's OFA-Sys layout (text only: no image codes), with and without entangled positions
    "ofasys": dict(NORMFORMER, use_ofasys=True, vit_type="vit_base"),
    "ofasys_entangled": dict(NORMFORMER, use_ofasys=True, vit_type="vit_base", entangle_position_embedding=True),
}


CODE_MASKS = {"text": None, "mixed": [False, True, True], "codes": [True, True, True]}


@pytest.mark.parametrize("config, code_masks", [
    pytest.param(config, masks, id=f"{config}-{name}") for config in CONFIGS for name, masks in CODE_MASKS.items()
    if masks is None or not config.startswith("ofasys")  # the OFA-Sys layout has no image-code positions
])
def test_incremental_decoding_equals_full_forward(config, code_masks):
    model = random_model(**CONFIGS[config])
    batch = random_batch()
    cm = None if code_masks is None else torch.tensor(code_masks)
    with torch.no_grad():
        enc = model.encoder(batch["src_tokens"], batch["src_lengths"], patch_images=batch["patch_images"],
                            patch_masks=batch["patch_masks"])
        full, _ = model.decoder(batch["prev_output_tokens"], code_masks=cm, encoder_out=enc)
        state, steps = {}, []
        for t in range(1, full.size(1) + 1):
            steps.append(model.decoder(batch["prev_output_tokens"][:, :t], code_masks=cm, encoder_out=enc,
                                       incremental_state=state)[0])
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


def test_reordering_encoder_out_and_cache_follows_beams():
    model = random_model()
    batch = random_batch()
    order = torch.tensor([2, 0, 0, 1])
    with torch.no_grad():
        enc = model.encoder(batch["src_tokens"], batch["src_lengths"], patch_images=batch["patch_images"],
                            patch_masks=batch["patch_masks"])
        prev = batch["prev_output_tokens"]
        state = {}
        for t in range(1, 4):
            model.decoder(prev[:, :t], encoder_out=enc, incremental_state=state)
        model.decoder.reorder_incremental_state_scripting(state, order)
        reordered = model.encoder.reorder_encoder_out(enc, order)
        step = model.decoder(prev[order, :4], encoder_out=reordered, incremental_state=state)[0]
        full = model.decoder(prev[order, :4], encoder_out=reordered)[0]
    torch.testing.assert_close(step[:, -1], full[:, -1], atol=1e-5, rtol=0)


def test_padding_and_batch_composition_do_not_change_a_sample():
    """A sample's logits do not depend on the other samples it is batched with (masks work)."""
    model = random_model()
    batch = random_batch()
    with torch.no_grad():
        together = model(**batch)[0]
        alone = model(**{k: v[-1:] for k, v in batch.items()})[0]
    torch.testing.assert_close(together[-1:], alone, atol=1e-5, rtol=0)


def test_batch_gradients_are_the_sum_of_the_samples_gradients():
    """The encoder's position biases, computed once for a batch whose samples share their positions, give each
    sample its own logits, and gradients equal to the sum of per-sample gradients (padding, a sample without
    image)."""
    model = random_model()
    batch = random_batch()
    weights = torch.randn(model(**batch)[0].shape, generator=torch.Generator().manual_seed(1))

    def gradients(rows):
        model.zero_grad()
        logits = model(**{k: v[rows] for k, v in batch.items()})[0]
        (logits * weights[rows]).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    together, batch_grads = gradients(slice(None))
    summed = {}
    for i in range(len(batch["src_tokens"])):
        logits, grads = gradients(slice(i, i + 1))
        torch.testing.assert_close(together[i:i + 1], logits, atol=1e-5, rtol=0)
        for name, grad in grads.items():
            summed[name] = summed.get(name, 0) + grad
    assert batch_grads.keys() == summed.keys()
    assert batch_grads["encoder.image_rel_pos_table_list.0.weight"].abs().sum() > 0
    for name, grad in batch_grads.items():  # float sums in another order: close relative to the largest entry
        scale = float(summed[name].abs().max())
        torch.testing.assert_close(grad, summed[name], atol=1e-5 * scale + 1e-5, rtol=0, msg=lambda m: f"{name}: {m}")


def test_attention_weights_path_equals_fused_path():
    model = random_model()
    batch = random_batch()
    with torch.no_grad():
        enc = model.encoder(batch["src_tokens"], batch["src_lengths"], patch_images=batch["patch_images"],
                            patch_masks=batch["patch_masks"])
        logits_last, extra = model.decoder(batch["prev_output_tokens"], encoder_out=enc)
        logits_first, extra_first = model.decoder(batch["prev_output_tokens"], encoder_out=enc, alignment_layer=0)
    torch.testing.assert_close(logits_first, logits_last, atol=1e-5, rtol=0)
    attn = extra["attn"][0]
    assert attn.shape == (3, 7, enc["encoder_out"][0].size(0))
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 7), atol=1e-5, rtol=0)


@pytest.mark.parametrize("image_size,interpolate", [(128, False), (256, False), (512, True)])
def test_image_sizes_and_position_interpolation(image_size, interpolate):
    model = random_model(interpolate_position=interpolate)
    batch = random_batch(bsz=2, image_size=image_size)
    with torch.no_grad():
        enc = model.encoder(batch["src_tokens"], batch["src_lengths"], patch_images=batch["patch_images"],
                            patch_masks=batch["patch_masks"])
    patches = (image_size // 16) ** 2
    assert enc["encoder_out"][0].shape == (patches + 6, 2, 64)
    assert enc["position_embeddings"][0].shape == (2, patches + 6, 64)
    assert torch.isfinite(enc["encoder_out"][0]).all()


def test_sample_patch_num_and_second_image():
    model = random_model()
    batch = random_batch(bsz=2)
    with torch.no_grad():
        enc = model.encoder(batch["src_tokens"], batch["src_lengths"], patch_images=batch["patch_images"],
                            patch_images_2=batch["patch_images"].flip(-1), patch_masks=batch["patch_masks"],
                            sample_patch_num=5)
    assert enc["encoder_out"][0].shape[0] == 5 + 5 + 6
    # the sample without image has all its patches (of both images) masked
    assert enc["encoder_padding_mask"][0][1, :10].all() and not enc["encoder_padding_mask"][0][0, :10].any()


def test_classification_head():
    model = random_model()
    model.register_classification_head("cls", num_classes=3)
    batch = random_batch()
    out, _ = model(**batch, classification_head_name="cls")
    assert out.shape == (3, 3)


@pytest.mark.parametrize("flag,frozen,trainable", [
    ("freeze_encoder", "encoder.layers.0.fc1.weight", "decoder.layers.0.fc1.weight"),
    ("freeze_decoder", "decoder.layers.0.fc1.weight", "encoder.layers.0.fc1.weight"),
    ("freeze_encoder_embedding", "encoder.embed_tokens.weight", "encoder.layers.0.fc1.weight"),
    ("freeze_resnet", "encoder.embed_images.bn1.weight", "encoder.embed_images.conv1.weight"),
])
def test_freeze_flags(flag, frozen, trainable):
    model = build_ofa_model("ofa_tiny", **SMALL, **{flag: True})
    params = dict(model.named_parameters())
    assert not params[frozen].requires_grad
    assert params[trainable].requires_grad


def test_frozen_batchnorm_keeps_running_statistics():
    model = build_ofa_model("ofa_tiny", **SMALL, freeze_resnet=True).train()
    before = model.encoder.embed_images.bn1.running_mean.clone()
    model.encoder.embed_images(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert torch.equal(model.encoder.embed_images.bn1.running_mean, before)


def test_unknown_arch_and_resnet_are_clear_errors():
    with pytest.raises(ValueError, match="unknown --arch 'ofa_gigantic'"):
        build_ofa_model("ofa_gigantic")
    with pytest.raises(ValueError, match="unknown --resnet-type 'resnet7'"):
        build_ofa_model("ofa_tiny", **{**SMALL, "resnet_type": "resnet7"})


def test_cli_flags_registered_with_fairseq():
    assert ARCH_MODEL_REGISTRY["ofa_base"] is OFAModel
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    OFAModel.add_args(parser)
    args = parser.parse_args(["--scale-attn", "--resnet-type", "resnet50", "--encoder-drop-path-rate", "0.1"])
    assert args.scale_attn is True and args.resnet_type == "resnet50" and args.encoder_drop_path_rate == 0.1
    assert not hasattr(args, "scale_fc")  # unset flags are left to the arch function


def test_released_checkpoint_layout_loads_strictly(dictionary):
    """A state dict in the released layout (with bucket tables) loads strictly, tables recomputed."""
    model = build_ofa_model("ofa_tiny", dictionary=dictionary, **SMALL, **NORMFORMER)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["encoder.token_rp_bucket"].zero_()  # whatever a file holds, the tables come from the config
    fresh = build_ofa_model("ofa_tiny", dictionary=dictionary, **SMALL, **NORMFORMER)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.encoder.token_rp_bucket, model.encoder.token_rp_bucket)
    assert torch.equal(fresh.decoder.layers[0].fc1.weight, model.decoder.layers[0].fc1.weight)


@pytest.mark.parametrize("autocast", [False, True])
def test_tied_output_projection_gradients_accumulate_in_place(autocast):
    """The decoder's projection gives F.linear's gradients, and the tied weight's embedding-lookup gradients are
    added into its weight gradient in place (F.linear's is a view, which autograd adds out of place)."""
    from torch.profiler import profile

    from models.ofa.unify_transformer import _LinearOwningWeightGrad

    def tied_backward(project):
        torch.manual_seed(0)
        weight = torch.randn(50, 8, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            hidden = torch.nn.functional.embedding(torch.tensor([[3, 7, 7]]), weight) * 2
            logits = project(hidden, weight)
            loss = (logits.float().log_softmax(-1)[..., 5]).sum()
        with profile() as prof:
            loss.backward()
        adds = [e.name for e in prof.events() if e.name in ("aten::add", "aten::add_")]
        return weight.grad, adds

    expected, linear_adds = tied_backward(torch.nn.functional.linear)
    grad, adds = tied_backward(_LinearOwningWeightGrad.apply)
    exact = {} if autocast else {"rtol": 0, "atol": 0}
    torch.testing.assert_close(grad, expected, **exact)
    assert adds == ["aten::add_"]
    if not autocast:
        assert linear_adds == ["aten::add"]
