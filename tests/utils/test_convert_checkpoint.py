"""Hugging Face / ModelScope <-> fairseq OFA checkpoint conversion: name maps, exact round trips, CLI, errors."""
import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.dictionary import load_ofa_dictionary
from models.ofa import OFAModel, build_ofa_model
from models.ofa.ofa import ARCH_SIZES, ARCH_SIZES_VIT
from utils.checkpoint_utils import CheckpointError, load_checkpoint_to_cpu, load_model_state, torch_load_safely
from models.ofa.hf_format import (
    CheckpointLayoutError,
    convert_fairseq_to_hf,
    convert_hf_to_fairseq,
    to_fairseq_name,
    to_hf_name,
)
from scripts.convert_checkpoint import main

REPO = Path(__file__).resolve().parents[2]

RELEASED = dict(scale_attn=True, scale_fc=True, scale_heads=True)
TINY = dict(encoder_layers=1, decoder_layers=1, encoder_embed_dim=64, decoder_embed_dim=64,
            encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128, encoder_attention_heads=4,
            decoder_attention_heads=4, resnet_type="resnet18")

# Module names of the ports' OFAEncoder/OFADecoder and their layers (modeling_ofa.py of both ports).
HF_ENCODER_MODULES = {"embed_tokens", "layernorm_embedding", "type_embedding", "embed_images", "image_proj",
                      "patch_layernorm_embedding", "embed_positions", "embed_image_positions", "pos_ln",
                      "image_pos_ln", "pos_q_linear", "pos_k_linear", "layers", "layer_norm",
                      "token_rel_pos_table_list", "image_rel_pos_table_list", "token_rp_bucket", "image_rp_bucket"}
HF_DECODER_MODULES = {"embed_tokens", "layernorm_embedding", "type_embedding", "embed_positions", "embed_image_positions", "pos_ln",
                      "image_pos_ln", "self_pos_q_linear", "self_pos_k_linear", "cross_pos_q_linear",
                      "cross_pos_k_linear", "code_layernorm_embedding", "layers", "layer_norm", "output_projection",
                      "token_rel_pos_table_list", "image_rel_pos_table_list", "token_rp_bucket", "image_rp_bucket",
                      "image_position_idx"}
HF_LAYER_MODULES = {
    "encoder": {"self_attn", "self_attn_layer_norm", "self_attn_mid_layer_norm", "fc1", "fc2", "ffn_layer_norm",
                "final_layer_norm"},
    "decoder": {"self_attn", "self_attn_layer_norm", "self_attn_mid_layer_norm", "cross_attn",
                "cross_attn_layer_norm", "cross_attn_mid_layer_norm", "fc1", "fc2", "ffn_layer_norm",
                "final_layer_norm"},
}
HF_TOP_MODULES = {"encoder": HF_ENCODER_MODULES, "decoder": HF_DECODER_MODULES}


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", **TINY, **RELEASED).eval()
    with torch.no_grad():  # NormFormer gains and relative-position tables start as constants: make them distinct
        for name, param in model.named_parameters():
            if name.endswith("c_attn") or "rel_pos_table" in name:
                param.uniform_(0.5, 1.5)
    return model


def tiny_inputs():
    generator = torch.Generator().manual_seed(1)
    src_tokens = torch.randint(4, 1000, (2, 7), generator=generator)
    src_tokens[1, :2] = 1  # left padding, as OFA's collater writes it
    return dict(src_tokens=src_tokens, src_lengths=torch.tensor([7, 5]),
                prev_output_tokens=torch.randint(4, 1000, (2, 5), generator=generator),
                patch_images=torch.randn(2, 3, 64, 64, generator=generator),
                patch_masks=torch.tensor([True, False]))


def assert_same_state(actual, expected):
    assert list(actual) == list(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype and torch.equal(actual[name], tensor), name


@pytest.mark.parametrize("arch", [*ARCH_SIZES, *ARCH_SIZES_VIT])
def test_every_arch_maps_names_and_shapes_both_ways(arch, shared):
    with torch.device("meta"):
        model = build_ofa_model(arch, **RELEASED)
    state = model.state_dict(keep_vars=True)
    names = list(state)
    reference = shared / "keys" / f"{arch}_released_keys.tsv"
    if reference.exists():  # the released checkpoints' names, as the original writes them
        names += [line.split("\t")[0] for line in reference.read_text().splitlines()]
    hf_names = {to_hf_name(name) for name in names}
    assert len(hf_names) == len(set(names))
    for name in names:
        assert to_fairseq_name(to_hf_name(name)) == name
    for hf_name in hf_names:
        side, module, *rest = hf_name.split(".")
        if module == "version":
            continue
        assert module in HF_TOP_MODULES[side], hf_name
        if module == "layers":
            assert rest[1] in HF_LAYER_MODULES[side], hf_name

    hf_state, config = convert_fairseq_to_hf({"model": state, "cfg": {"model": model.args}})
    embed_dim, (encoder_layers, decoder_layers), heads, backbone = {**ARCH_SIZES, **ARCH_SIZES_VIT}[arch]
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"]) == (embed_dim, encoder_layers,
                                                                                       decoder_layers)
    vit = arch in ARCH_SIZES_VIT  # OFA-6B: the ports' OFA-Sys layout
    assert config["use_ofasys"] == vit
    assert (config["encoder_attention_heads"], config["vit_type" if vit else "resnet_type"],
            config["normformer"]) == (heads, backbone, True)
    assert set(hf_state) == {to_hf_name(name) for name in state if not name.endswith(".version")}
    if not vit:
        assert hf_state["decoder.image_position_idx"].shape == (1025,)  # the ports' padding, not ours
    back, options = convert_hf_to_fairseq(hf_state, config)
    assert options["arch"] == arch
    assert list(back) == list(state)
    assert all(back[name].shape == state[name].shape for name in state)


def test_tiny_round_trip_is_exact(tiny_model):
    state = tiny_model.state_dict()
    hf_state, config = convert_fairseq_to_hf({"model": state, "cfg": {"model": tiny_model.args}})
    assert hf_state["decoder.layers.0.cross_attn.q_proj.weight"] is state["decoder.layers.0.encoder_attn.q_proj.weight"]
    back, options = convert_hf_to_fairseq(hf_state, json.loads(json.dumps(config)))
    assert_same_state(back, state)
    assert back["encoder.embed_tokens.weight"] is back["decoder.output_projection.weight"]

    rebuilt = build_ofa_model(options.pop("arch"), **options).eval()
    rebuilt.load_state_dict(back)
    with torch.no_grad():
        expected, _ = tiny_model(**tiny_inputs())
        actual, _ = rebuilt(**tiny_inputs())
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("entangle", [False, True])
def test_ofasys_vit_round_trip_is_exact(entangle):
    torch.manual_seed(0)
    options = dict(TINY, resnet_type="resnet50", vit_type="vit_base", use_ofasys=True, resnet_drop_path_rate=0.1,
                   entangle_position_embedding=entangle)
    model = build_ofa_model("ofa_tiny", **options, **RELEASED).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.rand_like(param) * 0.1)
    state = model.state_dict()
    hf_state, config = convert_fairseq_to_hf({"model": state, "cfg": {"model": model.args}})
    assert (config["use_ofasys"], config["vit_type"], config["vit_drop_path_rate"]) == (True, "vit_base", 0.1)
    assert config["entangle_position_embedding"] == entangle
    assert ("encoder.pos_q_linear.weight" in hf_state) != entangle and "decoder.type_embedding.weight" in hf_state
    back, options = convert_hf_to_fairseq(hf_state, json.loads(json.dumps(config)))
    assert_same_state(back, state)
    assert (options["use_ofasys"], options["vit_type"], options["resnet_drop_path_rate"]) == (True, "vit_base", 0.1)
    rebuilt = build_ofa_model(options.pop("arch"), **options).eval()
    rebuilt.load_state_dict(back)
    with torch.no_grad():
        expected, _ = model(**tiny_inputs())
        actual, _ = rebuilt(**tiny_inputs())
    assert torch.equal(actual, expected)


def test_loading_across_layouts_names_the_option():
    ofasys = build_ofa_model("ofa_tiny", **TINY, vit_type="vit_base", use_ofasys=True)
    standard = build_ofa_model("ofa_tiny", **TINY, vit_type="vit_base")
    with pytest.raises(CheckpointError, match="OFA-Sys layout .*: add --use-ofasys"):
        load_model_state(standard, ofasys.state_dict(), "ofa_6b.pt")
    with pytest.raises(CheckpointError, match="original OFA layout, the model in the OFA-Sys one"):
        load_model_state(ofasys, standard.state_dict(), "ofa_large.pt")


def test_without_head_gains_the_ports_get_ones_and_we_get_them_back():
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", **TINY)  # no NormFormer at all
    hf_state, config = convert_fairseq_to_hf(model.state_dict(), {"arch": "ofa_tiny", **TINY})
    assert not config["normformer"] and not config["scale_heads"]
    assert torch.equal(hf_state["encoder.layers.0.self_attn.c_attn"], torch.ones(4))
    back, _ = convert_hf_to_fairseq(hf_state, config)
    assert_same_state(back, model.state_dict())
    hf_state["encoder.layers.0.self_attn.c_attn"] = torch.full((4,), 2.0)
    with pytest.raises(CheckpointLayoutError, match="encoder.layers.0.self_attn.c_attn"):
        convert_hf_to_fairseq(hf_state, config)


def test_ports_wrapper_prefix_and_single_stored_embedding(tiny_model):
    hf_state, config = convert_fairseq_to_hf({"model": tiny_model.state_dict(), "cfg": {"model": tiny_model.args}})
    # safetensors keeps a tied tensor once; a ``model.``-prefixed wrapper stores the same tensors
    stored = {f"model.{name}": t for name, t in hf_state.items()
              if name not in ("decoder.embed_tokens.weight", "decoder.output_projection.weight")}
    back, _ = convert_hf_to_fairseq(stored, config)
    assert_same_state(back, tiny_model.state_dict())


@pytest.mark.slow
def test_cli_round_trip_through_files(tiny_model, tmp_path):
    checkpoint = tmp_path / "ours.pt"
    torch.save({"model": tiny_model.state_dict(), "cfg": {"model": tiny_model.args}}, checkpoint)
    hf_dir = tmp_path / "hf"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_checkpoint.py"), "to-hf", str(checkpoint),
                           str(hf_dir), "--allow-position-mismatch"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "trained without --disable-entangle" in done.stderr  # tiny_model adds positions to decoder inputs
    # no task in the checkpoint: no ModelScope configuration.json
    assert sorted(p.name for p in hf_dir.iterdir()) == ["config.json", "merges.txt", "pytorch_model.bin", "vocab.json"]
    assert json.loads((hf_dir / "config.json").read_text())["d_model"] == 64

    out = tmp_path / "back" / "ours.pt"
    assert main(["to-fairseq", str(hf_dir), str(out)]) == 0
    converted = load_checkpoint_to_cpu(str(out))
    assert_same_state(converted["model"], tiny_model.state_dict())
    options = converted["cfg"].model
    assert options.arch == "ofa_tiny" and options.encoder_embed_dim == 64
    dictionary = load_ofa_dictionary()
    task = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary)
    load_model_state(OFAModel.build_model(options, task), converted["model"], str(out))


def test_original_checkpoint_round_trip(shared, tmp_path):
    spec = importlib.util.spec_from_file_location("ckpt_pack", shared / "ckpt_pack.py")
    ckpt_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt_pack)
    original = tmp_path / "checkpoint.pt"
    ckpt_pack.unpack(shared / "e2e_caption" / "checkpoint.packed.pt", original, shared / "rp_buckets.pt")
    assert main(["to-hf", str(original), str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["d_model"], config["encoder_attention_heads"], config["disable_entangle"]) == (64, 2, True)
    assert main(["to-fairseq", str(tmp_path / "hf"), str(tmp_path / "back.pt")]) == 0
    assert_same_state(torch_load_safely(str(tmp_path / "back.pt"))["model"], torch_load_safely(str(original))["model"])


def test_unknown_missing_or_misshapen_tensors_name_the_first_offender(tiny_model, tmp_path, capsys):
    hf_state, config = convert_fairseq_to_hf({"model": tiny_model.state_dict(), "cfg": {"model": tiny_model.args}})
    cases = [
        ({**hf_state, "decoder.lm_head.weight": torch.zeros(1)}, "unexpected tensor 'decoder.lm_head.weight'"),
        ({k: v for k, v in hf_state.items() if k != "encoder.pos_ln.bias"}, "missing tensor 'encoder.pos_ln.bias'"),
        ({**hf_state, "encoder.image_proj.weight": torch.zeros(64, 512)},
         r"'encoder.image_proj.weight' has shape \(64, 512\), expected \(64, 1024\)"),
        ({to_fairseq_name(k): v for k, v in hf_state.items()}, "'encoder.layers.0.attn_ln.weight' is named the fa"),
    ]
    for state, message in cases:
        with pytest.raises(CheckpointLayoutError, match=message):
            convert_hf_to_fairseq(state, config)
    with pytest.raises(CheckpointLayoutError, match="unexpected tensor 'classification_heads.snli.dense.weight'"):
        convert_fairseq_to_hf({**tiny_model.state_dict(), "classification_heads.snli.dense.weight": torch.zeros(1)},
                              {"arch": "ofa_tiny", **TINY, **RELEASED})

    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    torch.save(cases[1][0], hf_dir / "pytorch_model.bin")
    (hf_dir / "config.json").write_text(json.dumps(config))
    assert main(["to-fairseq", str(hf_dir), str(tmp_path / "out.pt")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "missing tensor 'encoder.pos_ln.bias'" in error and str(hf_dir) in error
    assert not (tmp_path / "out.pt").exists()


def test_layouts_without_counterpart_are_refused():
    with pytest.raises(CheckpointLayoutError, match="use_gamma_feature=True has no counterpart"):
        convert_hf_to_fairseq({}, {"d_model": 2560, "use_ofasys": True, "use_gamma_feature": True})
    with pytest.raises(CheckpointLayoutError, match="vit_type='vit_tiny' is not one of"):
        convert_hf_to_fairseq({}, {"use_ofasys": True, "vit_type": "vit_tiny"})
    for options, message in ((dict(vit_type="vit_base"), "--vit-type vit_base has no Hugging Face counterpart "
                                                         "without --use-ofasys"),
                             (dict(use_ofasys=True), "--use-ofasys without --vit-type")):
        with torch.device("meta"):
            model = build_ofa_model("ofa_tiny", **TINY, **options)
        with pytest.raises(CheckpointLayoutError, match=message):
            convert_fairseq_to_hf({"model": model.state_dict(keep_vars=True), "cfg": {"model": model.args}})
    with pytest.raises(CheckpointLayoutError, match="normformer"):
        convert_fairseq_to_hf({"encoder.embed_tokens.weight": torch.empty(59457, 64, device="meta")},
                              {"arch": "ofa_tiny", **TINY, "scale_attn": True})
