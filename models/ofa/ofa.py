"""The ``ofa`` fairseq model, its options and the named architectures ``ofa_tiny`` .. ``ofa_huge``."""
import argparse
import logging
from dataclasses import MISSING, dataclass, field, fields
from typing import Optional, Union, get_args, get_origin

import torch
import torch.nn as nn
from fairseq import utils
from fairseq.models import (
    ARCH_CONFIG_REGISTRY,
    FairseqEncoderDecoderModel,
    register_model,
    register_model_architecture,
)
from torch import Tensor

from ..candidate_scorer import score_candidates_with_trie
from data.bert_bpe import OFA_CN_DICTIONARY_SIZE
from .layers import Adapter, PromptEncoder
from .backbone import IMAGE_BACKBONES, load_backbone_weights
from .vit import VIT_CONFIGS
from .unify_transformer import DEFAULT_MAX_POSITIONS, Embedding, TransformerDecoder, TransformerEncoder

logger = logging.getLogger(__name__)


def init_bert_params(module: nn.Module) -> None:
    """BERT initialisation (normal(0, 0.02), zero biases and padding rows), as the original applies."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        nn.init.zeros_(module.weight[module.padding_idx])


@dataclass
class OFAModelConfig:
    """Options of the ``ofa`` model; defaults are those of ``ofa_large``, the other archs override sizes."""

    activation_fn: str = field(default="gelu", metadata={"help": "activation function of the FFN",
                                                         "choices": utils.get_available_activation_fns()})
    dropout: float = field(default=0.0, metadata={"help": "dropout probability"})
    attention_dropout: float = field(default=0.0, metadata={"help": "dropout probability of attention weights"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout probability after the FFN activation"})
    encoder_embed_dim: int = field(default=1024, metadata={"help": "encoder embedding dimension"})
    encoder_ffn_embed_dim: int = field(default=4096, metadata={"help": "encoder FFN dimension"})
    encoder_layers: int = field(default=12, metadata={"help": "number of encoder layers"})
    encoder_attention_heads: int = field(default=16, metadata={"help": "number of encoder attention heads"})
    encoder_normalize_before: bool = field(default=True, metadata={"help": "layer norm before each encoder block"})
    encoder_learned_pos: bool = field(default=True, metadata={"help": "learned encoder positions (always on)"})
    decoder_embed_dim: Optional[int] = field(default=None, metadata={"help": "decoder embedding dimension"})
    decoder_ffn_embed_dim: Optional[int] = field(default=None, metadata={"help": "decoder FFN dimension"})
    decoder_layers: int = field(default=12, metadata={"help": "number of decoder layers"})
    decoder_attention_heads: int = field(default=16, metadata={"help": "number of decoder attention heads"})
    decoder_normalize_before: bool = field(default=True, metadata={"help": "layer norm before each decoder block"})
    decoder_learned_pos: bool = field(default=True, metadata={"help": "learned decoder positions (always on)"})
    decoder_output_dim: Optional[int] = field(default=None, metadata={"help": "decoder output dimension"})
    share_decoder_input_output_embed: bool = field(default=True, metadata={"help": "tie decoder input/output embeddings"})
    share_all_embeddings: bool = field(default=True, metadata={"help": "share encoder, decoder and output embeddings"})
    layernorm_embedding: bool = field(default=True, metadata={"help": "layer norm on token embeddings"})
    no_scale_embedding: bool = field(default=True, metadata={"help": "do not scale embeddings by sqrt(dim)"})
    encoder_drop_path_rate: float = field(default=0.0, metadata={"help": "encoder drop path rate"})
    decoder_drop_path_rate: float = field(default=0.0, metadata={"help": "decoder drop path rate"})
    resnet_drop_path_rate: float = field(default=0.0, metadata={"help": "resnet drop path rate"})
    checkpoint_activations: bool = field(default=False, metadata={
        "help": "checkpoint activations at each layer (and ResNet stage or ViT block): recompute them during backward, "
                "trading compute for memory"})
    offload_activations: bool = field(default=False, metadata={
        "help": "checkpoint activations and keep the saved inputs in CPU memory; implies --checkpoint-activations"})
    token_bucket_size: int = field(default=256, metadata={"help": "relative position buckets between tokens"})
    image_bucket_size: int = field(default=42, metadata={"help": "side of the image position grid"})
    attn_scale_factor: float = field(default=2.0, metadata={"help": "attention scale factor"})
    freeze_resnet: bool = field(default=False, metadata={"help": "freeze the resnet's BatchNorm layers"})
    freeze_encoder: bool = field(default=False, metadata={"help": "freeze the parameters of the encoder"})
    freeze_decoder: bool = field(default=False, metadata={"help": "freeze the parameters of the decoder"})
    freeze_encoder_embedding: bool = field(default=False, metadata={"help": "freeze encoder token embedding"})
    freeze_decoder_embedding: bool = field(default=False, metadata={"help": "freeze decoder token embedding"})
    add_type_embedding: bool = field(default=True, metadata={"help": "add text/image type embedding"})
    interpolate_position: bool = field(default=False, metadata={
        "help": "interpolate the pretrained image position grid for larger images"})
    resnet_type: str = field(default="resnet152", metadata={"help": "image encoder (ResNet, or ViT-B/16)",
                                                            "choices": IMAGE_BACKBONES})
    vit_type: Optional[str] = field(default=None, metadata={"help": "CLIP-style ViT image encoder instead of the ResNet",
                                                            "choices": list(VIT_CONFIGS)})
    timm_backbone: Optional[str] = field(default=None, metadata={
        "help": "any timm model (features_only) as image encoder instead of the ResNet"})
    resnet_model_path: Optional[str] = field(default=None, metadata={"help": "path to image-encoder weights to load"})
    code_image_size: int = field(default=128, metadata={"help": "image size of generated image codes"})
    patch_layernorm_embedding: bool = field(default=True, metadata={"help": "layer norm on patch embeddings"})
    code_layernorm_embedding: bool = field(default=True, metadata={"help": "layer norm on image-code embeddings"})
    entangle_position_embedding: bool = field(default=False, metadata={
        "help": "add absolute positions to encoder inputs"})
    disable_entangle: bool = field(default=False, metadata={"help": "do not add positions to decoder inputs"})
    use_ofasys: bool = field(default=False, metadata={
        "help": "the OFA-Sys layout of ModelScope's ViT and OFA-6B checkpoints (default of ofa_6b): positions "
                "without layer norm, no position-bias projections with --entangle-position-embedding, decoder "
                "positions added only with it, no image-code generation"})
    sync_bn: bool = field(default=False, metadata={"help": "synchronised BatchNorm in the resnet"})
    scale_attn: bool = field(default=False, metadata={"help": "NormFormer: layer norm after attention"})
    scale_fc: bool = field(default=False, metadata={"help": "NormFormer: layer norm inside the FFN"})
    scale_heads: bool = field(default=False, metadata={"help": "NormFormer: learned per-head scales"})
    scale_resids: bool = field(default=False, metadata={"help": "NormFormer: learned residual scales"})
    pooler_dropout: float = field(default=0.0, metadata={"help": "dropout in classification heads"})
    pooler_classifier: str = field(default="mlp", metadata={"help": "classification head type",
                                                            "choices": ["mlp", "linear"]})
    pooler_activation_fn: str = field(default="tanh", metadata={"help": "activation of classification heads",
                                                                "choices": utils.get_available_activation_fns()})
    spectral_norm_classification_head: bool = field(default=False, metadata={
        "help": "spectral normalisation on classification heads"})
    bitfit: bool = field(default=False, metadata={"help": "BitFit: train only the biases of layer norms and FFNs"})
    adapter: bool = field(default=False, metadata={"help": "add adapters after every FFN and train only them"})
    adapter_dim: int = field(default=200, metadata={"help": "adapter bottleneck dimension"})
    encoder_prompt: bool = field(default=False, metadata={"help": "prefix tuning in the encoder (train only prompts)"})
    encoder_prompt_type: str = field(default="prefix", metadata={"help": "prompt type", "choices": ["prefix"]})
    encoder_prompt_projection: bool = field(default=False, metadata={"help": "encoder prompts through an MLP"})
    encoder_prompt_length: int = field(default=100, metadata={"help": "number of encoder prompts"})
    encoder_prompt_dim: Optional[int] = field(default=None, metadata={
        "help": "hidden size of the encoder prompt MLP (default 2 x embed dim)"})
    decoder_prompt: bool = field(default=False, metadata={"help": "prefix tuning in the decoder (train only prompts)"})
    decoder_prompt_type: str = field(default="prefix", metadata={"help": "prompt type", "choices": ["prefix"]})
    decoder_prompt_projection: bool = field(default=False, metadata={"help": "decoder prompts through an MLP"})
    decoder_prompt_length: int = field(default=100, metadata={"help": "number of decoder prompts"})
    decoder_prompt_dim: Optional[int] = field(default=None, metadata={
        "help": "hidden size of the decoder prompt MLP (default 2 x embed dim)"})


# Options the model reads but the task owns (``--max-source-positions`` ...): defaults for models built without it.
TASK_OWNED_DEFAULTS = {"max_source_positions": DEFAULT_MAX_POSITIONS, "max_target_positions": DEFAULT_MAX_POSITIONS,
                       "orig_patch_image_size": 256}


def add_dataclass_args(parser: argparse.ArgumentParser, config_cls) -> None:
    """Add one ``--flag`` per dataclass field with no default, so arch functions can fill them in.

    Not fairseq's ``gen_parser_from_dataclass``: it makes a True-default boolean a ``store_false`` flag (the
    original's scripts pass ``--layernorm-embedding --add-type-embedding ...`` to switch them on) and ignores
    ``choices``.
    """
    for f in fields(config_cls):
        option = "--" + f.name.replace("_", "-")
        kwargs = {"help": f.metadata.get("help"), "default": argparse.SUPPRESS}
        if f.type is bool:
            kwargs["action"] = "store_true"
        else:
            kind = f.type
            if get_origin(kind) is Union:
                kind = next(a for a in get_args(kind) if a is not type(None))
            kwargs["type"] = kind
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(option, **kwargs)


@register_model("ofa")
class OFAModel(FairseqEncoderDecoderModel):
    """OFA: a unified encoder-decoder over image patches and text."""

    __jit_unused_properties__ = ["supported_targets"]

    def __init__(self, args, encoder: TransformerEncoder, decoder: TransformerDecoder):
        super().__init__(encoder, decoder)
        self.args = args
        self.apply(init_bert_params)  # BERT-style initialisation of every Linear/Embedding, as the original
        for module in self.modules():
            if isinstance(module, Adapter):
                module.reset_parameters()  # adapters start as the identity
        self.classification_heads = nn.ModuleDict()
        self.eos: int = encoder.dictionary.eos()

    @staticmethod
    def add_args(parser: argparse.ArgumentParser) -> None:
        add_dataclass_args(parser, OFAModelConfig)

    @classmethod
    def build_model(cls, args, task) -> "OFAModel":
        arch = getattr(args, "arch", None) or "ofa"
        if arch not in ARCH_CONFIG_REGISTRY and arch != "ofa":
            raise ValueError(f"unknown --arch {arch!r}; OFA archs: {', '.join({**ARCH_SIZES, **ARCH_SIZES_VIT})}")
        ARCH_CONFIG_REGISTRY.get(arch, base_architecture)(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        encoder_embed = Embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
        if args.share_all_embeddings:
            if src_dict != tgt_dict:
                raise ValueError("--share-all-embeddings requires a joined dictionary")
            if args.encoder_embed_dim != args.decoder_embed_dim:
                raise ValueError("--share-all-embeddings requires --encoder-embed-dim to match --decoder-embed-dim")
            decoder_embed = encoder_embed
            args.share_decoder_input_output_embed = True
        else:
            decoder_embed = Embedding(len(tgt_dict), args.decoder_embed_dim, tgt_dict.pad())
        model = cls(args, TransformerEncoder(args, src_dict, encoder_embed), TransformerDecoder(args, tgt_dict, decoder_embed))
        if args.resnet_model_path:  # after the model's own initialisation, which would overwrite it
            load_backbone_weights(model.encoder.embed_images, args.resnet_model_path)
        model.apply_freezing(args)
        return model

    def apply_freezing(self, args) -> None:
        """Turn off gradients for the parts named by ``--freeze-*``, and for all but the tuned parameters
        under prompt tuning, adapters and BitFit."""
        tuned = (PromptEncoder, Adapter)
        if args.encoder_prompt or args.decoder_prompt or args.adapter:
            self.requires_grad_(False)
            for module in self.modules():
                if isinstance(module, tuned):
                    module.requires_grad_(True)
        if args.bitfit:
            for name, param in self.named_parameters():
                param.requires_grad_(name.endswith("bias") and ("layer_norm" in name or "fc" in name))
        if args.freeze_encoder:
            self.encoder.requires_grad_(False)
        if args.freeze_decoder:
            self.decoder.requires_grad_(False)
        if args.freeze_encoder_embedding:
            self.encoder.embed_tokens.weight.requires_grad_(False)
        if args.freeze_decoder_embedding:
            self.decoder.embed_tokens.weight.requires_grad_(False)

    @property
    def supported_targets(self):
        return {"self"}

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        patch_images: Optional[Tensor] = None,
        patch_images_2: Optional[Tensor] = None,
        patch_masks: Optional[Tensor] = None,
        code_masks: Optional[Tensor] = None,
        sample_patch_num: Optional[int] = None,
        features_only: bool = False,
        classification_head_name: Optional[str] = None,
        token_embeddings: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
        alignment_layer: Optional[int] = None,
        alignment_heads: Optional[int] = None,
    ):
        if classification_head_name is not None:
            features_only = True
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths, patch_images=patch_images,
                                   patch_images_2=patch_images_2, patch_masks=patch_masks,
                                   token_embeddings=token_embeddings, return_all_hiddens=return_all_hiddens,
                                   sample_patch_num=sample_patch_num)
        x, extra = self.decoder(prev_output_tokens, code_masks=code_masks, encoder_out=encoder_out,
                                features_only=features_only, alignment_layer=alignment_layer,
                                alignment_heads=alignment_heads, src_lengths=src_lengths,
                                return_all_hiddens=return_all_hiddens)
        if classification_head_name is not None:
            # Classify from the decoder state at the last non-padding position.
            last = prev_output_tokens.ne(self.encoder.padding_idx).sum(1) - 1
            sentence = x[torch.arange(x.size(0), device=x.device), last]
            head = self.classification_heads[classification_head_name]
            if head.use_two_images:
                sentence = sentence.view(-1, sentence.size(1) * 2)
            x = head(sentence)
        return x, extra

    def score_answers_in_trie(self, encoder_out: dict, prompts, answers, trie) -> Tensor:
        """(B, K) log-likelihoods of K answers after each of B decoder prompts, normalised over the tokens the
        answer trie allows at each position (all-candidate VQA, SNLI-VE); see ``models/candidate_scorer.py``."""
        return score_candidates_with_trie(self, encoder_out, prompts, answers, trie)

    def register_classification_head(self, name: str, num_classes: int, inner_dim: Optional[int] = None,
                                     use_two_images: bool = False, **kwargs) -> None:
        self.classification_heads[name] = OFAClassificationHead(
            input_dim=self.args.encoder_embed_dim, inner_dim=inner_dim or self.args.encoder_embed_dim,
            num_classes=num_classes, activation_fn=self.args.pooler_activation_fn,
            pooler_dropout=self.args.pooler_dropout, pooler_classifier=self.args.pooler_classifier,
            use_two_images=use_two_images, do_spectral_norm=self.args.spectral_norm_classification_head)

    def upgrade_state_dict_named(self, state_dict: dict, name: str) -> None:
        """Bring an original or released state dict to this model's layout before strict loading."""
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name else ""
        for module_name, module in (("encoder", self.encoder), ("decoder", self.decoder)):
            for buffer_name, buffer in module.computed_buffers().items():
                state_dict[f"{prefix}{module_name}.{buffer_name}"] = buffer
            version = f"{prefix}{module_name}.version"
            state_dict.setdefault(version, module.version)
        self._upgrade_classification_heads(state_dict, prefix)
        self._grow_embeddings(state_dict, prefix)

    def _upgrade_classification_heads(self, state_dict: dict, prefix: str) -> None:
        head_prefix = prefix + "classification_heads."
        for key in [k for k in state_dict if k.startswith(head_prefix)]:
            head_name = key[len(head_prefix):].split(".")[0]
            if head_name not in self.classification_heads:
                if getattr(self.args, "load_checkpoint_heads", False):
                    out = state_dict[f"{head_prefix}{head_name}.out_proj.weight"]
                    self.register_classification_head(head_name, out.size(0))
                else:
                    logger.warning("deleting classification head %s from checkpoint (not in the model)", key)
                    del state_dict[key]
        for key, value in self.classification_heads.state_dict().items():
            state_dict.setdefault(head_prefix + key, value)

    def _grow_embeddings(self, state_dict: dict, prefix: str) -> None:
        """A task may add symbols (e.g. answers) after pretraining: append rows for them."""
        key = prefix + "encoder.embed_tokens.weight"
        if key not in state_dict:
            return
        loaded = state_dict[key]
        missing = len(self.encoder.dictionary) - loaded.size(0)
        if missing <= 0:
            return
        if loaded.size(0) == OFA_CN_DICTIONARY_SIZE:
            raise ValueError(f"the checkpoint has OFA-CN's {loaded.size(0)}-symbol BERT vocabulary but the task's "
                             f"dictionary has {len(self.encoder.dictionary)} symbols: pass --bpe bert")
        new_rows = loaded.new_zeros(missing, loaded.size(1))
        nn.init.normal_(new_rows, mean=0, std=loaded.size(1) ** -0.5)
        for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight"):
            if prefix + name in state_dict:
                state_dict[prefix + name] = torch.cat([state_dict[prefix + name], new_rows])


class OFAClassificationHead(nn.Module):
    """Sentence-level classification head on the decoder's last state (pooler ``mlp`` or ``linear``)."""

    def __init__(self, input_dim: int, inner_dim: int, num_classes: int, activation_fn: str, pooler_dropout: float,
                 pooler_classifier: str, use_two_images: bool = False, do_spectral_norm: bool = False):
        super().__init__()
        self.pooler_classifier = pooler_classifier
        self.use_two_images = use_two_images
        input_dim = input_dim * 2 if use_two_images else input_dim
        self.dropout = nn.Dropout(p=pooler_dropout)
        if pooler_classifier == "mlp":
            self.dense = nn.Linear(input_dim, inner_dim)
            self.activation_fn = utils.get_activation_fn(activation_fn)
            self.out_proj = nn.Linear(inner_dim, num_classes)
        elif pooler_classifier == "linear":
            self.out_proj = nn.Linear(input_dim, num_classes)
        else:
            raise ValueError(f"unknown --pooler-classifier {pooler_classifier!r} (mlp or linear)")
        if do_spectral_norm:
            self.out_proj = torch.nn.utils.spectral_norm(self.out_proj)

    def forward(self, features: Tensor, **kwargs) -> Tensor:
        x = self.dropout(features)
        if self.pooler_classifier == "mlp":
            x = self.dropout(self.activation_fn(self.dense(x)))
        return self.out_proj(x)


def base_architecture(args) -> None:
    """Fill every option the user did not set with its default (``OFAModelConfig`` and task-owned ones)."""
    for f in fields(OFAModelConfig):
        if getattr(args, f.name, None) is None and f.default is not MISSING:
            setattr(args, f.name, f.default)
    for name, default in TASK_OWNED_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, default)
    for name in ("embed_dim", "ffn_embed_dim"):
        if getattr(args, f"decoder_{name}", None) is None:
            setattr(args, f"decoder_{name}", getattr(args, f"encoder_{name}"))
    if args.decoder_output_dim is None:
        args.decoder_output_dim = args.decoder_embed_dim


def _size_architecture(embed_dim: int, layers: tuple[int, int], heads: int, backbone: str):
    """An arch function setting the sizes of one OFA model, leaving user-set values alone.

    ViT archs (OFA-6B) default to the OFA-Sys layout their released checkpoint has.
    """

    def arch(args) -> None:
        defaults = {"encoder_embed_dim": embed_dim, "encoder_ffn_embed_dim": 4 * embed_dim,
                    "encoder_layers": layers[0], "decoder_layers": layers[1], "encoder_attention_heads": heads,
                    "decoder_attention_heads": heads}
        if backbone in VIT_CONFIGS:
            defaults.update(vit_type=backbone, use_ofasys=True)
        else:
            defaults["resnet_type"] = backbone
        for name, value in defaults.items():
            if getattr(args, name, None) is None:
                setattr(args, name, value)
        base_architecture(args)

    return arch


ARCH_SIZES = {
    "ofa_tiny": (256, (4, 4), 4, "resnet50"),
    "ofa_medium": (512, (4, 4), 8, "resnet101"),
    "ofa_base": (768, (6, 6), 12, "resnet101"),
    "ofa_large": (1024, (12, 12), 16, "resnet152"),
    "ofa_huge": (1280, (24, 12), 16, "resnet152"),
}
# OFA-6B (ModelScope): hidden 2560, 32 heads, 36 + 24 layers, CLIP ViT-huge image encoder, OFA-Sys layout.
ARCH_SIZES_VIT = {"ofa_6b": (2560, (36, 24), 32, "vit_huge")}
for _arch_name, _sizes in {**ARCH_SIZES, **ARCH_SIZES_VIT}.items():
    register_model_architecture("ofa", _arch_name)(_size_architecture(*_sizes))


def build_ofa_model(arch: str = "ofa_tiny", dictionary=None, **overrides) -> OFAModel:
    """Build an OFA model as fairseq would (CLI defaults + arch function) without a task.

    ``overrides`` are option values by their ``dest`` name, e.g. ``encoder_layers=2``; the dictionary
    defaults to the 59457-symbol OFA vocabulary.
    """
    from data.dictionary import load_ofa_dictionary

    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    OFAModel.add_args(parser)
    args = parser.parse_args([])
    args.arch = arch
    for name, value in overrides.items():
        setattr(args, name, value)
    dictionary = dictionary if dictionary is not None else load_ofa_dictionary()
    task = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return OFAModel.build_model(args, task)
