"""Convert OFA weights and model options between the Hugging Face / ModelScope ports' layout and ours (the
original fairseq layout).

Both ports (OFA-Sys/OFA branch ``feature/add_transformers`` and ModelScope ``models/multi_modal/ofa``) keep the
fairseq module names except inside the Transformer layers (``LAYER_RENAMES``), always share the encoder/decoder token
embeddings, always carry NormFormer's per-head gains ``c_attn`` and fold ``--scale-attn --scale-fc`` into one
``normformer`` flag. Relative-position tables and fairseq's ``version`` entries are computed, not learned: they are
rebuilt for the target layout instead of copied. Tensors are moved, never copied or cast, so a round trip is exact.

ViT encoders (and OFA-6B) exist in the ports only in their OFA-Sys layout (``use_ofasys``), which is our
``--use-ofasys``; ResNet models convert in the original layout.

Same tensors do not always mean the same function: in the original layout the ports add token positions to the
decoder input only with ``entangle_position_embedding`` (the original adds them unless ``--disable-entangle``), and
OFA-Sys' transformers port scales attention by a fixed factor 2 whatever ``attn_scale_factor`` says.

The task side of a converted folder (ModelScope's ``configuration.json``) is :mod:`tasks.hf_folder`.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

import torch
from fairseq.data import Dictionary
from torch import Tensor

from data.dictionary import BPE_DIR
from .backbone import vit_type_of
from .layers import MultiheadAttention
from .ofa import ARCH_SIZES, ARCH_SIZES_VIT, build_ofa_model
from .vit import VIT_CONFIGS

StateDict = Dict[str, Tensor]

# Module names inside ``{encoder,decoder}.layers.N`` that differ: ours (fairseq) -> theirs. Everything else
# (embeddings, position tables, ResNet/ViT backbone, pos_q/k linears, layer_norm ...) has the same name on both sides.
LAYER_RENAMES = {
    "encoder": {"attn_ln": "self_attn_mid_layer_norm", "ffn_layernorm": "ffn_layer_norm"},
    "decoder": {"self_attn_ln": "self_attn_mid_layer_norm", "cross_attn_ln": "cross_attn_mid_layer_norm",
                "encoder_attn": "cross_attn", "encoder_attn_layer_norm": "cross_attn_layer_norm",
                "ffn_layernorm": "ffn_layer_norm"},
}
HF_LAYER_RENAMES = {side: {theirs: ours for ours, theirs in names.items()} for side, names in LAYER_RENAMES.items()}
# Wrappers with ``base_model_prefix = "model"`` store the OFAModel tensors under this prefix.
HF_WRAPPER_PREFIX = "model."
# The ports' decoder pads its image-code position ids with this many entries of this id (ours: to 1026 entries).
HF_CODE_POSITION_PADDING = (768, 1024)

# OFAConfig defaults of the ports (configuration_ofa.py), used for fields a config.json leaves out.
HF_CONFIG_DEFAULTS = {
    "vocab_size": 59457, "max_position_embeddings": 1024, "d_model": 512, "encoder_layers": 4, "decoder_layers": 4,
    "encoder_attention_heads": 8, "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048,
    "activation_function": "gelu", "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "scale_embedding": False, "encoder_normalize_before": True, "decoder_normalize_before": True, "normformer": True,
    "encoder_drop_path_rate": 0.0, "decoder_drop_path_rate": 0.0, "resnet_drop_path_rate": 0.0,
    "layernorm_embedding": True, "patch_layernorm_embedding": True, "code_layernorm_embedding": True,
    "resnet_type": "resnet101", "token_bucket_size": 256, "image_bucket_size": 42, "add_type_embedding": True,
    "share_decoder_input_output_embed": True, "attn_scale_factor": 2.0, "code_image_size": 128,
    "entangle_position_embedding": False, "disable_entangle": False, "interpolate_position": False,
    "share_attn_bias": False, "use_image_feature": True, "use_ofasys": False, "vit_type": "vit_base",
    "vit_drop_path_rate": 0.0, "use_gamma_feature": False, "exclude_mlp": True, "temperature_init_value": None,
}
# Config fields with the same name and meaning on both sides.
SAME_NAME_FIELDS = (
    "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads", "dropout",
    "attention_dropout", "activation_dropout", "encoder_normalize_before", "decoder_normalize_before",
    "encoder_drop_path_rate", "decoder_drop_path_rate", "resnet_drop_path_rate", "layernorm_embedding",
    "patch_layernorm_embedding", "code_layernorm_embedding", "resnet_type", "token_bucket_size", "image_bucket_size",
    "add_type_embedding", "share_decoder_input_output_embed", "attn_scale_factor", "code_image_size",
    "entangle_position_embedding", "disable_entangle", "interpolate_position",
)
# HF options whose non-default value builds a model ours has no counterpart for.
HF_UNSUPPORTED = {
    "share_attn_bias": "one relative-position table shared by all layers",
    "use_image_feature": "a text-only model without image encoder",
    "share_decoder_input_output_embed": "an output projection apart from the shared token embeddings",
    "use_gamma_feature": "learned layer-scale gains (weight_self_attn, weight_cross_attn, weight_ffn)",
    "exclude_mlp": "an mlp_head on top of the model",
    "temperature_init_value": "a learned temperature (temp)",
}
# Our options the ports cannot express.
FAIRSEQ_UNSUPPORTED = {
    "scale_resids": "NormFormer residual scales (w_resid)", "adapter": "adapters", "encoder_prompt": "prompt tuning",
    "decoder_prompt": "prompt tuning", "timm_backbone": "timm image encoders",
}
# fairseq activation names -> transformers ACT2FN names.
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_accurate": "gelu_new", "tanh": "tanh", "linear": "linear"}
# fairseq Dictionary special symbols, as the ports' configs expect them.
SPECIAL_TOKEN_IDS = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 0,
                     "forced_eos_token_id": 2}


class CheckpointLayoutError(ValueError):
    """A checkpoint whose tensors or options do not fit the layout being converted."""


def _rename(name: str, renames: Mapping[str, Mapping[str, str]]) -> str:
    parts = name.split(".")
    if len(parts) > 3 and parts[0] in renames and parts[1] == "layers":
        parts[3] = renames[parts[0]].get(parts[3], parts[3])
    return ".".join(parts)


def to_hf_name(name: str) -> str:
    """Our (fairseq) tensor name -> the Hugging Face / ModelScope name."""
    return _rename(name, LAYER_RENAMES)


def to_fairseq_name(name: str) -> str:
    """Hugging Face / ModelScope tensor name -> ours."""
    return _rename(name, HF_LAYER_RENAMES)


def _placeholder_dictionary(size: int) -> Dictionary:
    """A fairseq Dictionary of ``size`` symbols (specials at OFA's ids): only its length shapes the model."""
    dictionary = Dictionary()
    for i in range(size - len(dictionary)):
        dictionary.add_symbol(f"<symbol_{i}>")
    return dictionary


@dataclass
class OurLayout:
    """Every state-dict entry of our model for some options: shapes, tied groups and computed tables."""

    args: argparse.Namespace
    shapes: Dict[str, Tuple[int, ...]]
    ties: List[List[str]]
    computed: StateDict
    head_gains: Dict[str, int]  # our attention modules -> heads, for their HF ``c_attn``

    @classmethod
    def build(cls, arch: str, vocab_size: int, overrides: Mapping[str, Any]) -> "OurLayout":
        overrides = {**overrides, "resnet_model_path": None}  # weights come from the checkpoint, not a file
        with torch.device("meta"):
            model = build_ofa_model(arch, dictionary=_placeholder_dictionary(vocab_size), **overrides)
        entries = model.state_dict(keep_vars=True)
        groups: Dict[int, List[str]] = {}
        for name, tensor in entries.items():
            groups.setdefault(id(tensor), []).append(name)
        args = model.args
        tables = _computed_tables(args.token_bucket_size, args.image_bucket_size, args.code_image_size)
        computed = {name: table for name, table in tables.items() if name in entries}  # OFA-Sys: fewer tables
        for name, table in computed.items():
            if entries[name].shape != table.shape:
                raise RuntimeError(f"computed table {name} does not fit the model built for --arch {arch}")
        head_gains = {name: module.num_heads for name, module in model.named_modules()
                      if isinstance(module, MultiheadAttention)}
        return cls(args, {name: tuple(t.shape) for name, t in entries.items()},
                   [names for names in groups.values() if len(names) > 1], computed, head_gains)


@functools.lru_cache(maxsize=4)
def _computed_tables(token_bucket_size: int, image_bucket_size: int, code_image_size: int) -> StateDict:
    """The buffers our model computes from these options (position buckets, code positions) and fairseq's
    ``version``, taken from a minimal model: a meta-device build has their shapes but no values."""
    model = build_ofa_model("ofa_tiny", dictionary=_placeholder_dictionary(8), encoder_layers=1, decoder_layers=1,
                            encoder_embed_dim=8, decoder_embed_dim=8, encoder_ffn_embed_dim=8,
                            decoder_ffn_embed_dim=8, encoder_attention_heads=1, decoder_attention_heads=1,
                            resnet_type="resnet18", token_bucket_size=token_bucket_size,
                            image_bucket_size=image_bucket_size, code_image_size=code_image_size)
    tables = {}
    for side in ("encoder", "decoder"):
        module = getattr(model, side)
        tables[f"{side}.version"] = module.version
        tables.update({f"{side}.{name}": buf for name, buf in module.computed_buffers().items()})
    return tables


def _check_layout(state: StateDict, shapes: Mapping[str, Tuple[int, ...]], optional: Set[str], where: str) -> None:
    """Raise naming the first tensor that is unknown, misshapen or missing (and not ``optional``)."""
    for name, tensor in state.items():
        if name not in shapes:
            raise CheckpointLayoutError(f"{where}: unexpected tensor {name!r} (not in the layout being converted)")
        if tuple(tensor.shape) != shapes[name]:
            raise CheckpointLayoutError(f"{where}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                                        f"expected {shapes[name]}")
    for name in shapes:
        if name not in state and name not in optional:
            raise CheckpointLayoutError(f"{where}: missing tensor {name!r}")


def _tie(state: StateDict, ties: List[List[str]], where: str) -> None:
    """Point every name of a tied group at one tensor; files may store a tied tensor once or under each name."""
    for group in ties:
        present = [name for name in group if name in state]
        if not present:
            raise CheckpointLayoutError(f"{where}: missing tensor {group[0]!r}")
        first = state[present[0]]
        for name in present[1:]:
            if state[name] is not first and not torch.equal(state[name], first):
                raise CheckpointLayoutError(f"{where}: {name!r} should be tied to {present[0]!r} but differs")
        for name in group:
            state[name] = first


def _check_names(state: StateDict, round_trip: Callable[[str], str], where: str, other: str) -> None:
    for name in state:
        if round_trip(name) != name:
            raise CheckpointLayoutError(f"{where}: tensor {name!r} is named the {other} way")


def _hf_code_positions(ours: Tensor, code_image_size: int) -> Tensor:
    count, value = HF_CODE_POSITION_PADDING
    return torch.cat([ours[: 1 + (code_image_size // 8) ** 2], ours.new_full((count,), value)])


def _hf_buffers(layout: OurLayout) -> StateDict:
    """The ports' computed tables: ours except fairseq's ``version`` and the differently padded code positions."""
    buffers = {name: t for name, t in layout.computed.items() if not name.endswith(".version")}
    if "decoder.image_position_idx" in buffers:
        buffers["decoder.image_position_idx"] = _hf_code_positions(buffers["decoder.image_position_idx"],
                                                                   layout.args.code_image_size)
    return buffers


def _hf_shapes(layout: OurLayout) -> Tuple[Dict[str, Tuple[int, ...]], StateDict]:
    """The ports' layout for our options: renamed learned tensors, ``c_attn`` of every attention, buffers."""
    shapes = {to_hf_name(name): shape for name, shape in layout.shapes.items() if name not in layout.computed}
    if not layout.args.scale_heads:
        shapes.update({to_hf_name(f"{module}.c_attn"): (heads,) for module, heads in layout.head_gains.items()})
    buffers = _hf_buffers(layout)
    shapes.update({name: tuple(t.shape) for name, t in buffers.items()})
    return shapes, buffers


def _nearest_arch(embed_dim: int, layers: Tuple[int, int], heads: int, ffn_dim: int, backbone: str) -> str:
    """The registered arch with these sizes, else the one of the nearest width (sizes are set explicitly anyway)
    among the archs of the same kind of image encoder (the arch picks the encoder when none is set)."""
    sizes = ARCH_SIZES_VIT if backbone in VIT_CONFIGS else ARCH_SIZES
    for arch, (dim, arch_layers, arch_heads, arch_backbone) in sizes.items():
        if (dim, tuple(arch_layers), arch_heads, 4 * dim, arch_backbone) == (embed_dim, layers, heads, ffn_dim,
                                                                              backbone):
            return arch
    return min(sizes, key=lambda arch: abs(sizes[arch][0] - embed_dim))


def fairseq_overrides_from_hf_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Our model options (``--arch`` plus explicit values) for a Hugging Face / ModelScope config.json."""
    config = {**HF_CONFIG_DEFAULTS, **config}
    for option, meaning in HF_UNSUPPORTED.items():
        if config[option] != HF_CONFIG_DEFAULTS[option]:
            raise CheckpointLayoutError(f"config.json: {option}={config[option]!r} has no counterpart in our OFA "
                                        f"model: {meaning}")
    activation = {hf: ours for ours, hf in ACTIVATIONS.items()}.get(config["activation_function"])
    if activation is None:
        raise CheckpointLayoutError(f"config.json: activation_function={config['activation_function']!r} is not "
                                    f"one of {sorted(ACTIVATIONS.values())}")
    overrides = {name: config[name] for name in SAME_NAME_FIELDS}
    backbone = config["resnet_type"]
    if config["use_ofasys"]:  # the ports' OFA-Sys layout always has a ViT encoder
        backbone = config["vit_type"]
        if backbone not in VIT_CONFIGS:
            raise CheckpointLayoutError(f"config.json: vit_type={backbone!r} is not one of {sorted(VIT_CONFIGS)}")
        overrides.update(vit_type=backbone, resnet_drop_path_rate=config["vit_drop_path_rate"])
    overrides.update(
        use_ofasys=config["use_ofasys"],
        encoder_embed_dim=config["d_model"], decoder_embed_dim=config["d_model"],
        decoder_output_dim=config["d_model"], encoder_ffn_embed_dim=config["encoder_ffn_dim"],
        decoder_ffn_embed_dim=config["decoder_ffn_dim"], activation_fn=activation,
        no_scale_embedding=not config["scale_embedding"], share_all_embeddings=True,
        scale_attn=config["normformer"], scale_fc=config["normformer"],
        # The ports always apply c_attn; only configs written by convert_fairseq_to_hf can say it is all ones.
        scale_heads=config.get("scale_heads", True),
        max_source_positions=config["max_position_embeddings"], max_target_positions=config["max_position_embeddings"],
    )
    if "orig_patch_image_size" in config:
        overrides["orig_patch_image_size"] = config["orig_patch_image_size"]
    arch = _nearest_arch(config["d_model"], (config["encoder_layers"], config["decoder_layers"]),
                         config["encoder_attention_heads"], config["encoder_ffn_dim"], backbone)
    return {"arch": arch, **overrides}


def hf_config_from_fairseq_args(args: argparse.Namespace, vocab_size: int) -> Dict[str, Any]:
    """The config.json of the Hugging Face / ModelScope port for our model options."""
    for option, meaning in FAIRSEQ_UNSUPPORTED.items():
        if getattr(args, option, None):
            raise CheckpointLayoutError(f"--{option.replace('_', '-')} has no Hugging Face counterpart: {meaning}")
    vit_type = vit_type_of(args)
    if vit_type and not args.use_ofasys:
        raise CheckpointLayoutError(f"--vit-type {vit_type} has no Hugging Face counterpart without --use-ofasys: "
                                    "the ports build ViT encoders only in their OFA-Sys layout")
    if args.use_ofasys and not vit_type:
        raise CheckpointLayoutError("--use-ofasys without --vit-type has no Hugging Face counterpart: the ports' "
                                    "OFA-Sys layout always has a ViT encoder")
    for ours, theirs, hf_name in (
        ("encoder_embed_dim", "decoder_embed_dim", "d_model"), ("decoder_embed_dim", "decoder_output_dim", "d_model"),
        ("max_source_positions", "max_target_positions", "max_position_embeddings"),
        ("scale_attn", "scale_fc", "normformer"),
    ):
        if getattr(args, ours) != getattr(args, theirs):
            raise CheckpointLayoutError(f"--{ours.replace('_', '-')} {getattr(args, ours)} differs from "
                                        f"--{theirs.replace('_', '-')} {getattr(args, theirs)}: the port has one "
                                        f"{hf_name!r}")
    if not args.share_all_embeddings:
        raise CheckpointLayoutError("the port always shares encoder and decoder embeddings: "
                                    "--share-all-embeddings is required")
    if args.activation_fn not in ACTIVATIONS:
        raise CheckpointLayoutError(f"--activation-fn {args.activation_fn} has no transformers counterpart")
    config = {"architectures": ["OFAModel"], "model_type": "ofa", "is_encoder_decoder": True,
              **SPECIAL_TOKEN_IDS, "vocab_size": vocab_size}
    config.update({name: getattr(args, name) for name in SAME_NAME_FIELDS})
    config.update(
        d_model=args.encoder_embed_dim, encoder_ffn_dim=args.encoder_ffn_embed_dim,
        decoder_ffn_dim=args.decoder_ffn_embed_dim, activation_function=ACTIVATIONS[args.activation_fn],
        scale_embedding=not args.no_scale_embedding, normformer=args.scale_attn, scale_heads=args.scale_heads,
        max_position_embeddings=args.max_source_positions, orig_patch_image_size=args.orig_patch_image_size,
        use_ofasys=bool(args.use_ofasys),
    )
    if args.use_ofasys:
        config.update(vit_type=vit_type, vit_drop_path_rate=args.resnet_drop_path_rate)
    return config


def convert_hf_to_fairseq(hf_dir_or_state_dict: Union[str, os.PathLike, StateDict],
                          config: Optional[Mapping[str, Any]] = None) -> Tuple[StateDict, Dict[str, Any]]:
    """A Hugging Face / ModelScope OFA state dict (or model folder) -> (our state dict, our model options).

    The options are complete (``arch`` included), as stored in a checkpoint's ``cfg["model"]``.

    ``config`` is the port's config.json (read from the folder when not given).
    """
    if isinstance(hf_dir_or_state_dict, (str, os.PathLike)):
        hf_state, dir_config = load_hf_dir(hf_dir_or_state_dict)
        config = dir_config if config is None else config
    else:
        hf_state = dict(hf_dir_or_state_dict)
    if config is None:
        raise ValueError("convert_hf_to_fairseq needs the model's config.json (config=...)")
    if hf_state and all(name.startswith(HF_WRAPPER_PREFIX) for name in hf_state):
        hf_state = {name[len(HF_WRAPPER_PREFIX):]: t for name, t in hf_state.items()}
    overrides = fairseq_overrides_from_hf_config(config)
    arch = overrides.pop("arch")
    layout = OurLayout.build(arch, config.get("vocab_size", HF_CONFIG_DEFAULTS["vocab_size"]), overrides)
    where = "Hugging Face checkpoint"
    _check_names(hf_state, lambda name: to_hf_name(to_fairseq_name(name)), where, "fairseq")
    hf_shapes, hf_buffers = _hf_shapes(layout)
    hf_ties = [[to_hf_name(name) for name in group] for group in layout.ties]
    _check_layout(hf_state, hf_shapes, optional={*hf_buffers, *sum(hf_ties, [])}, where=where)
    _tie(hf_state, hf_ties, where)
    if not layout.args.scale_heads:
        for module in layout.head_gains:
            name = to_hf_name(f"{module}.c_attn")
            if not torch.all(hf_state.pop(name) == 1):
                raise CheckpointLayoutError(f"{where}: config.json has scale_heads=false but {name!r} is not all ones")
    state = {to_fairseq_name(name): t for name, t in hf_state.items() if name not in hf_buffers}
    state.update(layout.computed)
    ordered = {name: state[name] for name in layout.shapes}  # our module order, like the checkpoints we write
    return ordered, vars(layout.args).copy()


def convert_fairseq_to_hf(our_checkpoint_or_state_dict: Mapping[str, Any],
                          arch_overrides: Optional[Mapping[str, Any]] = None) -> Tuple[StateDict, Dict[str, Any]]:
    """Our checkpoint (``{"model", "cfg"|"args"}``) or bare state dict -> (the port's state dict, its config.json).

    ``arch_overrides`` update the checkpoint's model options; a bare state dict needs at least ``arch``.
    """
    checkpoint = our_checkpoint_or_state_dict
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        state = dict(checkpoint["model"])
        cfg = checkpoint.get("cfg") or {}
        stored = cfg.get("model") if isinstance(cfg, Mapping) else None
        stored = stored if stored is not None else checkpoint.get("args")
        options = dict(vars(stored) if isinstance(stored, argparse.Namespace) else stored or {})
    else:
        state, options = dict(checkpoint), {}
    options.update(arch_overrides or {})
    if "arch" not in options:
        raise ValueError("no arch: a bare state dict needs its model options, e.g. --model-overrides "
                         "\"{'arch': 'ofa_base', 'scale_attn': True, 'scale_fc': True, 'scale_heads': True}\"")
    arch = options.pop("arch")
    embed = next((state[name] for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
                  if name in state), None)
    if embed is None:
        raise CheckpointLayoutError("fairseq checkpoint: missing tensor 'encoder.embed_tokens.weight'")
    layout = OurLayout.build(arch, embed.size(0), options)
    config = hf_config_from_fairseq_args(layout.args, embed.size(0))
    where = "fairseq checkpoint"
    _check_names(state, lambda name: to_fairseq_name(to_hf_name(name)), where, "Hugging Face")
    _check_layout(state, layout.shapes, optional={*layout.computed, *sum(layout.ties, [])}, where=where)
    _tie(state, layout.ties, where)
    hf_state = {to_hf_name(name): state[name] for name in layout.shapes if name not in layout.computed}
    if not layout.args.scale_heads:  # the ports always apply c_attn: all ones leaves the outputs unchanged
        for module, heads in layout.head_gains.items():
            like = state[f"{module}.q_proj.weight"]
            hf_state[to_hf_name(f"{module}.c_attn")] = torch.ones(heads, dtype=like.dtype, device=like.device)
    hf_state.update(_hf_buffers(layout))
    return hf_state, config


def load_hf_dir(path: Union[str, os.PathLike]) -> Tuple[StateDict, Dict[str, Any]]:
    """Tensors and config.json of a Hugging Face / ModelScope model folder (single or sharded weights)."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: no config.json in the model folder")
    config = json.loads(config_file.read_text())
    try:
        import safetensors.torch as safetensors_torch
    except ImportError:
        safetensors_torch = None

    def load_bin(file: Path) -> StateDict:
        return torch.load(file, map_location="cpu", weights_only=True)

    candidates = [("pytorch_model.bin", load_bin)]
    if safetensors_torch is not None:
        candidates.insert(0, ("model.safetensors", safetensors_torch.load_file))
    for weights, loader in candidates:
        if (path / weights).is_file():
            return loader(path / weights), config
        index = path / f"{weights}.index.json"
        if index.is_file():
            state: StateDict = {}
            for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
                state.update(loader(path / shard))
            return state, config
    raise FileNotFoundError(f"{path}: no {' or '.join(name for name, _ in candidates)} (nor a sharded index)")


# ---- what the ports need beside the weights ---------------------------------------------------------------------

TOKENIZER_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def write_tokenizer_files(out_dir: Union[str, os.PathLike], bpe_dir: Optional[str] = None) -> None:
    """``vocab.json`` (BART order: the 4 specials, dict.txt's symbols as GPT-2 BPE strings, ``<mask>``: the ids
    of our dictionary) and ``merges.txt`` (GPT-2's merges), as the ports' OFATokenizer reads them."""
    bpe_dir = Path(bpe_dir or BPE_DIR)
    token_of_id = {gpt2_id: token for token, gpt2_id in json.loads((bpe_dir / "encoder.json").read_text()).items()}
    vocab = {symbol: i for i, symbol in enumerate(TOKENIZER_SPECIALS)}
    for line_number, line in enumerate((bpe_dir / "dict.txt").read_text(encoding="utf-8").splitlines(), 1):
        symbol = line.rsplit(" ", 1)[0]
        token = token_of_id.get(int(symbol)) if symbol.isdigit() else symbol  # madeupwordNNNN stay as they are
        if token is None or token in vocab:
            raise ValueError(f"{bpe_dir / 'dict.txt'}: line {line_number}: {symbol!r} is not a distinct GPT-2 BPE id")
        vocab[token] = len(vocab)
    vocab["<mask>"] = len(vocab)
    out_dir = Path(out_dir)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_bytes((bpe_dir / "vocab.bpe").read_bytes())


def check_position_layout(options: Mapping[str, Any], allow_mismatch: bool) -> None:
    """The ports add token positions to the decoder input only with entangle_position_embedding; the original
    layout adds them unless --disable-entangle: such a checkpoint converts to a port that computes otherwise."""
    if options.get("use_ofasys") or options.get("disable_entangle") or options.get("entangle_position_embedding"):
        return
    message = ("the checkpoint was trained without --disable-entangle: its decoder adds token positions to its "
               "inputs, which the Hugging Face/ModelScope ports do not, so they would compute other outputs. "
               "Finetune with --disable-entangle (as the original's finetuning scripts do), or pass "
               "--allow-position-mismatch to convert anyway")
    if not allow_mismatch:
        raise CheckpointLayoutError(message)
    print(f"warning: {message}", file=sys.stderr)
