"""OFA's unified encoder (text tokens + image patches) and decoder (text, ``<bin>`` or ``<code>`` tokens)."""
from __future__ import annotations

import functools
import math
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import FairseqEncoder, FairseqIncrementalDecoder
from fairseq.modules import LayerNorm
from torch import Tensor

from .layers import (ActivationCheckpointing, IncrementalState, PromptEncoder, TransformerDecoderLayer,
                     TransformerEncoderLayer)
from .backbone import build_image_backbone

DEFAULT_MAX_POSITIONS = 1024
# The decoder lays image codes on a grid of side code_image_size // 8, padded to this many positions.
DECODER_IMAGE_POSITIONS = 1026


@functools.lru_cache(maxsize=4)
def make_token_bucket_position(bucket_size: int, max_position: int = DEFAULT_MAX_POSITIONS) -> Tensor:
    """Relative-position buckets between text tokens: exact near the diagonal, log-spaced further away.

    Computed once per process, per distance (not per pair of positions): the encoder and decoder of every model
    share the table, which nothing writes to. On CPU also when the model is built on the meta device."""
    relative = torch.arange(1 - max_position, max_position, dtype=torch.long, device="cpu")
    sign = torch.sign(relative)
    mid = bucket_size // 2
    abs_pos = torch.where((relative < mid) & (relative > -mid), mid - 1, relative.abs())
    log_pos = torch.ceil(torch.log(abs_pos / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    bucket = torch.where(abs_pos.le(mid), relative, log_pos.int() * sign).long() + bucket_size - 1
    pos = torch.arange(max_position, device="cpu")
    return bucket[pos[:, None] - pos[None, :] + max_position - 1]


@functools.lru_cache(maxsize=4)
def make_image_bucket_position(bucket_size: int, num_relative_distance: int) -> Tensor:
    """Relative-position buckets between patches of a bucket_size x bucket_size grid (index 0: no patch); shared
    as :func:`make_token_bucket_position`'s.

    The bucket of patches (r, c) and (r', c') is (r - r' + S - 1) * (2S - 1) + (c - c' + S - 1) for side S: the
    difference of one number per patch, r * (2S - 1) + c, plus a constant."""
    span = 2 * bucket_size - 1
    axis = torch.arange(bucket_size, device="cpu")
    patch = (axis[:, None] * span + axis[None, :]).flatten()
    index = torch.empty((bucket_size * bucket_size + 1,) * 2, dtype=torch.long, device="cpu")
    index[1:, 1:] = patch[:, None] - patch[None, :] + (bucket_size - 1) * span + bucket_size - 1
    index[0, 0:] = num_relative_distance - 3
    index[0:, 0] = num_relative_distance - 2
    index[0, 0] = num_relative_distance - 1
    return index


def grid_position_ids(height: int, width: int, bucket_size: int) -> Tensor:
    """Ids (1-based, row-major on a bucket_size-wide grid) of the patches of a height x width image."""
    return (torch.arange(width, device="cpu")[None, :] + torch.arange(height, device="cpu")[:, None] * bucket_size
            + 1).view(-1)


def Embedding(num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
              zero_init: bool = False) -> nn.Embedding:
    m = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
    nn.init.normal_(m.weight, mean=0, std=embedding_dim ** -0.5)
    if padding_idx is not None:
        nn.init.constant_(m.weight[padding_idx], 0)
    if zero_init:
        nn.init.constant_(m.weight, 0)
    return m


def Linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    m = nn.Linear(in_features, out_features, bias)
    nn.init.xavier_uniform_(m.weight)
    if bias:
        nn.init.constant_(m.bias, 0.0)
    return m


def _drop_path_rates(rate: float, layers: int) -> List[float]:
    return torch.linspace(0, rate, layers, device="cpu").tolist()


def _build_prompt_encoder(args, side: str) -> Optional[PromptEncoder]:
    """``--{side}-prompt``: prefix-tuning prompts for the encoder or decoder (None when off)."""
    if not getattr(args, f"{side}_prompt", False):
        return None
    if getattr(args, f"{side}_prompt_type") != "prefix":
        raise ValueError(f"--{side}-prompt-type must be 'prefix'")
    return PromptEncoder(getattr(args, f"{side}_prompt_length"), getattr(args, f"{side}_embed_dim"),
                         getattr(args, f"{side}_attention_heads"), getattr(args, f"{side}_layers"),
                         projection=getattr(args, f"{side}_prompt_projection"),
                         proj_dim=getattr(args, f"{side}_prompt_dim"))


class _RelativePositions(nn.Module):
    """Bucket tables (computed, saved as buffers like the original) and per-layer learned bias tables."""

    def _init_relative_positions(self, args, num_layers: int, num_heads: int, image_tables: bool = True) -> None:
        token_num_rel_dis = 2 * args.token_bucket_size - 1
        self.token_rel_pos_table_list = nn.ModuleList(
            [Embedding(token_num_rel_dis, num_heads, zero_init=True) for _ in range(num_layers)])
        self.register_buffer("token_rp_bucket", make_token_bucket_position(args.token_bucket_size))
        if image_tables:
            image_num_rel_dis = (2 * args.image_bucket_size - 1) ** 2 + 3
            self.image_rel_pos_table_list = nn.ModuleList(
                [Embedding(image_num_rel_dis, num_heads, zero_init=True) for _ in range(num_layers)])
            self.register_buffer("image_rp_bucket",
                                 make_image_bucket_position(args.image_bucket_size, image_num_rel_dis))

    def token_rel_pos_bias(self, seq_len: int, idx: int, num_queries: Optional[int] = None) -> Tensor:
        """(H, Q, T) bias from the last ``num_queries`` (default all T) text positions to all, for layer ``idx``."""
        bucket = self.token_rp_bucket[seq_len - (num_queries or seq_len):seq_len, :seq_len]
        return F.embedding(bucket, self.token_rel_pos_table_list[idx].weight).permute(2, 0, 1)

    def image_rel_pos_bias(self, bucket: Tensor, idx: int) -> Tensor:
        """Bias for precomputed buckets (..., N, N) -> (..., H, N, N) for layer ``idx``."""
        return F.embedding(bucket, self.image_rel_pos_table_list[idx].weight).movedim(-1, -3)

    def computed_buffers(self) -> Dict[str, Tensor]:
        """Buffers derived from the config, not learned: restored on load whatever a checkpoint holds."""
        return {name: buf for name, buf in self.named_buffers(recurse=False) if name != "version"}


def _position_bias_projections(args, embed_dim: int) -> tuple[Optional[nn.Linear], Optional[nn.Linear]]:
    """The query/key projections of absolute positions; the OFA-Sys layout with entangled positions has none."""
    if args.use_ofasys and args.entangle_position_embedding:
        return None, None
    return nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim)


class TransformerEncoder(FairseqEncoder, _RelativePositions):
    """Encodes text tokens and (optionally) image patches into one sequence: [patches, tokens]."""

    def __init__(self, args, dictionary, embed_tokens: nn.Embedding):
        super().__init__(dictionary)
        self.args = args
        self.register_buffer("version", torch.Tensor([3]))
        self.encoder_prompt_encoder = _build_prompt_encoder(args, "encoder")
        embed_dim = embed_tokens.embedding_dim
        self.padding_idx = embed_tokens.padding_idx
        self.max_source_positions = args.max_source_positions
        self.num_attention_heads = args.encoder_attention_heads
        self.image_bucket_size = args.image_bucket_size
        self.orig_patch_image_size = args.orig_patch_image_size
        self.interpolate_position = args.interpolate_position
        self.entangle_position_embedding = args.entangle_position_embedding
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(embed_dim)
        self.dropout = nn.Dropout(args.dropout)

        self.embed_tokens = embed_tokens
        self.layernorm_embedding = LayerNorm(embed_dim) if args.layernorm_embedding else None
        self.type_embedding = Embedding(2, embed_dim) if args.add_type_embedding else None
        self.embed_images, image_channels = build_image_backbone(args)
        self.image_proj = Linear(image_channels, embed_dim)
        self.patch_layernorm_embedding = LayerNorm(embed_dim) if args.patch_layernorm_embedding else None
        self.embed_positions = Embedding(args.max_source_positions + 2, embed_dim)
        self.embed_image_positions = Embedding(args.image_bucket_size ** 2 + 1, embed_dim)
        # The OFA-Sys layout feeds positions to the bias projections without layer norm (its image_pos_ln is
        # stored, unused).
        self.use_ofasys = args.use_ofasys
        self.pos_ln = None if self.use_ofasys else LayerNorm(embed_dim)
        self.image_pos_ln = LayerNorm(embed_dim)
        self.pos_scaling = float(embed_dim / args.encoder_attention_heads * args.attn_scale_factor) ** -0.5
        self.pos_q_linear, self.pos_k_linear = _position_bias_projections(args, embed_dim)
        rates = _drop_path_rates(args.encoder_drop_path_rate, args.encoder_layers)
        self.layers = nn.ModuleList([TransformerEncoderLayer(args, drop_path_rate=r) for r in rates])
        self.run_layer = ActivationCheckpointing(args.checkpoint_activations, args.offload_activations)
        self.layer_norm = LayerNorm(embed_dim) if args.encoder_normalize_before else None
        self._init_relative_positions(args, args.encoder_layers, self.num_attention_heads)

    def embed_patches(self, patch_images: Tensor, sample_patch_num: Optional[int] = None):
        """Backbone features, grid position ids and position embeddings of a batch of images."""
        features = self.embed_images(patch_images)
        bsz, _, h, w = features.shape
        features = features.flatten(2).transpose(1, 2)
        position_ids = grid_position_ids(h, w, self.image_bucket_size).to(features.device).expand(bsz, -1)
        orig_hw = self.orig_patch_image_size // 16
        if self.interpolate_position and h * w > orig_hw * orig_hw:
            # Images larger than in pretraining: resample the pretrained position grid.
            grid_ids = grid_position_ids(orig_hw, orig_hw, self.image_bucket_size).to(features.device)
            grid = self.embed_image_positions(grid_ids).reshape(1, orig_hw, orig_hw, -1).permute(0, 3, 1, 2)
            pos_embed = F.interpolate(grid, size=(h, w), mode="bilinear").permute(0, 2, 3, 1).reshape(1, h * w, -1)
            pos_embed = pos_embed.expand(bsz, -1, -1)
        else:
            pos_embed = self.embed_image_positions(position_ids)
        if sample_patch_num is not None:
            # Pretraining trick: keep a random subset of patches per image.
            order = torch.rand(bsz, h * w, device=features.device).argsort(dim=1)[:, :sample_patch_num]
            features = features.gather(1, order[:, :, None].expand(-1, -1, features.size(2)))
            pos_embed = pos_embed.gather(1, order[:, :, None].expand(-1, -1, pos_embed.size(2)))
            position_ids = position_ids.gather(1, order)
        return features, position_ids, pos_embed

    def _embed_image(self, features: Tensor, pos_embed: Tensor, type_id: int) -> Tensor:
        x = self.embed_scale * self.image_proj(features)
        if self.entangle_position_embedding:
            x = x + pos_embed
        if self.type_embedding is not None:
            x = x + self.type_embedding.weight[type_id]
        if self.patch_layernorm_embedding is not None:
            x = self.patch_layernorm_embedding(x)
        return self.dropout(x)

    def _embed_text(self, src_tokens: Tensor, pos_embed: Tensor, token_embeddings: Optional[Tensor]) -> Tensor:
        x = self.embed_scale * (self.embed_tokens(src_tokens) if token_embeddings is None else token_embeddings)
        if self.entangle_position_embedding:
            x = x + pos_embed
        if self.type_embedding is not None:
            x = x + self.type_embedding.weight[0]
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        return self.dropout(x)

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Optional[Tensor] = None,
        patch_images: Optional[Tensor] = None,
        patch_images_2: Optional[Tensor] = None,
        patch_masks: Optional[Tensor] = None,
        code_masks: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
        token_embeddings: Optional[Tensor] = None,
        sample_patch_num: Optional[int] = None,
    ) -> Dict[str, List[Tensor]]:
        """Encode; returns fairseq's encoder-out dict (T x B x C) plus ``position_embeddings`` (B x T x C)."""
        bsz, src_len = src_tokens.shape
        text_pos = self.embed_positions(torch.arange(src_len, device=src_tokens.device).expand(bsz, -1))
        parts, padding, positions, image_buckets = [], [], [], []
        # Every sample has the same positions unless patches are sampled per image: the position biases are
        # then computed once and broadcast over the batch (the same values as per sample, one backward pass
        # through the bias tables instead of one per sample).
        bias_rows = bsz if sample_patch_num is not None else 1
        # Second image first, then the image, then the text (the original's order). The original gives the
        # second image type id 2, which its two-row type table cannot embed; both images use the image type.
        for type_id, images in ((1, patch_images_2), (1, patch_images)):
            if images is None:
                continue
            features, position_ids, image_pos = self.embed_patches(images, sample_patch_num)
            mask = features.new_zeros(features.shape[:2], dtype=torch.bool)
            if patch_masks is not None:
                mask[~patch_masks] = True
            parts.append(self._embed_image(features, image_pos, type_id))
            padding.append(mask)
            positions.append(image_pos if self.use_ofasys else self.image_pos_ln(image_pos))
            ids = position_ids[:bias_rows]
            image_buckets.append(self.image_rp_bucket[ids[:, :, None], ids[:, None, :]])
        parts.append(self._embed_text(src_tokens, text_pos, token_embeddings))
        padding.append(src_tokens.eq(self.padding_idx))
        positions.append(text_pos if self.use_ofasys else self.pos_ln(text_pos))
        x, padding_mask, pos_embed = torch.cat(parts, 1), torch.cat(padding, 1), torch.cat(positions, 1)

        has_pads = bool(padding_mask.any())
        if has_pads:
            x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)

        total = pos_embed.size(1)
        heads = self.num_attention_heads
        if self.pos_q_linear is None:  # OFA-Sys layout, positions entangled into the inputs: no absolute bias
            abs_pos_bias = x.new_zeros(bias_rows, heads, total, total)
        else:
            bias_pos = pos_embed[:bias_rows]
            pos_q = self.pos_q_linear(bias_pos).view(bias_rows, total, heads, -1).transpose(1, 2) * self.pos_scaling
            pos_k = self.pos_k_linear(bias_pos).view(bias_rows, total, heads, -1).transpose(1, 2)
            abs_pos_bias = torch.matmul(pos_q, pos_k.transpose(2, 3))

        encoder_states = [x] if return_all_hiddens else []
        prompts = self.encoder_prompt_encoder(bsz) if self.encoder_prompt_encoder is not None else None
        for idx, layer in enumerate(self.layers):
            bias = abs_pos_bias.clone()
            bias[:, :, -src_len:, -src_len:] += self.token_rel_pos_bias(src_len, idx)
            start = 0
            for bucket in image_buckets:
                n = bucket.size(1)
                bias[:, :, start:start + n, start:start + n] += self.image_rel_pos_bias(bucket, idx)
                start += n
            x = self.run_layer(layer, x, padding_mask if has_pads else None,
                               self_attn_bias=bias.reshape(-1, total, total),
                               prompt_kv=None if prompts is None else prompts[idx])
            if return_all_hiddens:
                encoder_states.append(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding_mask],
            "encoder_embedding": [],
            "encoder_states": encoder_states,
            "src_tokens": [],
            "src_lengths": [],
            "position_embeddings": [pos_embed],
        }

    @torch.jit.export
    def reorder_encoder_out(self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor) -> Dict[str, List[Tensor]]:
        """Select/reorder samples (beam expansion) in every entry of the encoder output."""
        batch_dim = {"encoder_out": 1, "encoder_states": 1}
        return {key: [t.index_select(batch_dim.get(key, 0), new_order) for t in values]
                for key, values in encoder_out.items()}

    def max_positions(self) -> int:
        return self.max_source_positions


class _LinearOwningWeightGrad(torch.autograd.Function):
    """``F.linear(x, weight)`` (no bias) whose weight gradient is a tensor of its own. ``F.linear`` hands back a
    transposed view, and autograd adds the next gradient of a tied weight (the embedding lookups') out of place
    into a new vocabulary-sized tensor; with this one it adds in place: one V x D buffer less at the peak of an
    fp32 backward. Under autocast the products run in the gradient's dtype, as they do
    for ``F.linear``, and the weight gradient is cast to the weight's dtype."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad.matmul(weight.to(grad.dtype)).to(x.dtype) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            rows = grad.reshape(-1, grad.size(-1))
            grad_weight = rows.t().mm(x.reshape(-1, x.size(-1)).to(grad.dtype)).to(weight.dtype)
        return grad_x, grad_weight


class TransformerDecoder(FairseqIncrementalDecoder, _RelativePositions):
    """Autoregressive decoder with position biases for text and, under ``code_masks``, image codes."""

    # an encoder output with one row per group of consecutive decoder rows (a sentence's beams) is attended
    # by all rows of its group, so beam search need not copy it per beam
    attends_shared_encoder_rows = True

    def __init__(self, args, dictionary, embed_tokens: nn.Embedding):
        super().__init__(dictionary)
        self.args = args
        self.register_buffer("version", torch.Tensor([3]))
        self._future_mask = torch.empty(0)
        self.decoder_prompt_encoder = _build_prompt_encoder(args, "decoder")
        embed_dim = args.decoder_embed_dim
        self.embed_dim = embed_dim
        self.padding_idx = embed_tokens.padding_idx
        self.max_target_positions = args.max_target_positions
        self.num_attention_heads = args.decoder_attention_heads
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(embed_dim)
        # The original tests ``entangle_position_embedding is not None``, so token positions are always
        # added to the decoder input unless --disable-entangle is set; the OFA-Sys layout adds them only
        # with --entangle-position-embedding.
        self.use_ofasys = args.use_ofasys
        self.add_positions_to_input = not args.disable_entangle and (
            args.entangle_position_embedding or not self.use_ofasys)
        self.dropout = nn.Dropout(args.dropout)

        self.embed_tokens = embed_tokens
        self.layernorm_embedding = LayerNorm(embed_dim) if args.layernorm_embedding else None
        self.embed_positions = Embedding(args.max_target_positions + 2, embed_dim)
        if self.use_ofasys:
            # OFA-Sys layout: text only (no image-code positions), raw positions, a one-row type embedding
            # (stored, unused).
            self.type_embedding = Embedding(1, embed_dim) if args.add_type_embedding else None
            self.embed_image_positions = self.pos_ln = self.image_pos_ln = None
        else:
            self.embed_image_positions = Embedding(args.image_bucket_size ** 2 + 1, embed_dim)
            self.pos_ln = LayerNorm(embed_dim)
            self.image_pos_ln = LayerNorm(embed_dim)
        self.pos_scaling = float(embed_dim / self.num_attention_heads * args.attn_scale_factor) ** -0.5
        self.self_pos_q_linear, self.self_pos_k_linear = _position_bias_projections(args, embed_dim)
        self.cross_pos_q_linear = nn.Linear(embed_dim, embed_dim)
        self.cross_pos_k_linear = nn.Linear(embed_dim, embed_dim)
        self.code_layernorm_embedding = LayerNorm(embed_dim) if args.code_layernorm_embedding else None
        rates = _drop_path_rates(args.decoder_drop_path_rate, args.decoder_layers)
        self.layers = nn.ModuleList([TransformerDecoderLayer(args, drop_path_rate=r) for r in rates])
        self.run_layer = ActivationCheckpointing(args.checkpoint_activations, args.offload_activations)
        self.layer_norm = LayerNorm(embed_dim) if args.decoder_normalize_before else None
        if args.share_decoder_input_output_embed:
            self.output_projection = nn.Linear(embed_tokens.embedding_dim, embed_tokens.num_embeddings, bias=False)
            self.output_projection.weight = embed_tokens.weight
        else:
            self.output_projection = nn.Linear(embed_dim, len(dictionary), bias=False)
            nn.init.normal_(self.output_projection.weight, mean=0, std=embed_dim ** -0.5)
        self._init_relative_positions(args, args.decoder_layers, self.num_attention_heads,
                                      image_tables=not self.use_ofasys)
        if not self.use_ofasys:
            window = args.code_image_size // 8
            code_ids = torch.cat([torch.tensor([0], device="cpu"),
                                  grid_position_ids(window, window, args.image_bucket_size)])
            padding = torch.full((DECODER_IMAGE_POSITIONS - code_ids.numel(),), 1024, dtype=torch.long, device="cpu")
            self.register_buffer("image_position_idx", torch.cat([code_ids, padding]))

    def _pos_heads(self, pos: Tensor, linear: nn.Module) -> Tensor:
        """(B, L, C) positions -> (B, H, L, D) projected per head."""
        return linear(pos).view(pos.size(0), pos.size(1), self.num_attention_heads, -1).transpose(1, 2)

    def _abs_pos_bias(self, q_pos: Tensor, k: Tensor, q_linear: nn.Module) -> Tensor:
        # k (projected keys) may have batch 1 (shared by all query rows) or the query batch, and vice versa
        return torch.matmul(self._pos_heads(q_pos, q_linear) * self.pos_scaling, k.transpose(2, 3))

    def _cross_pos_keys(self, src_pos: Tensor, incremental_state: Optional[IncrementalState]) -> Tensor:
        """Projected encoder positions; computed once per encoder output while decoding incrementally."""
        if incremental_state is None:
            return self._pos_heads(src_pos, self.cross_pos_k_linear)
        cached = self.get_incremental_state(incremental_state, "cross_pos_keys")
        if cached is None or cached["positions"] is not src_pos:  # a new or reordered encoder output
            # contiguous once here, rather than copied by every step's matmul
            cached = {"positions": src_pos, "keys": self._pos_heads(src_pos, self.cross_pos_k_linear).contiguous()}
            self.set_incremental_state(incremental_state, "cross_pos_keys", cached)
        return cached["keys"]

    def _position_biases(self, tgt_pos: Tensor, src_pos: Tensor, code_masks: Optional[Tensor], num_queries: int,
                         incremental_state: Optional[IncrementalState], bsz: int):
        """Absolute-position biases of the last ``num_queries`` positions: (B, H, Q, T) self, (B, H, Q, S) cross;
        B is 1 when they are the same for all rows. ``src_pos`` may have one row per group of
        ``bsz`` consecutive query rows (beams sharing their sentence's encoder output)."""
        if self.self_pos_q_linear is None:  # OFA-Sys layout, positions entangled into the inputs
            heads = self.num_attention_heads
            return (tgt_pos.new_zeros(1, heads, num_queries, tgt_pos.size(1)),
                    tgt_pos.new_zeros(1, heads, num_queries, src_pos.size(1)))
        cross_keys = self._cross_pos_keys(src_pos, incremental_state)

        def per_row(x: Tensor) -> Tensor:
            return x if x.size(0) in (1, bsz) else x.repeat_interleave(bsz // x.size(0), dim=0)

        def biases(pos: Tensor) -> tuple[Tensor, Tensor]:
            queries = pos[:, -num_queries:]
            keys = cross_keys if queries.size(0) == 1 else per_row(cross_keys)
            return (self._abs_pos_bias(queries, self._pos_heads(pos, self.self_pos_k_linear), self.self_pos_q_linear),
                    per_row(self._abs_pos_bias(queries, keys, self.cross_pos_q_linear)))

        self_bias, cross_bias = biases(tgt_pos if self.use_ofasys else self.pos_ln(tgt_pos))
        if code_masks is not None and code_masks.any():
            image_self, image_cross = biases(self.image_pos_ln(tgt_pos))
            mask = code_masks.view(-1, 1, 1, 1)
            self_bias, cross_bias = torch.where(mask, image_self, self_bias), torch.where(mask, image_cross, cross_bias)
        return self_bias, cross_bias

    def _rel_pos_bias(self, seq_len: int, idx: int, code_masks: Optional[Tensor], num_queries: int) -> Tensor:
        """(B or 1, H, Q, T) relative bias: token buckets for text samples, grid buckets for image codes."""
        text = self.token_rel_pos_bias(seq_len, idx, num_queries).unsqueeze(0)
        if code_masks is None or not code_masks.any():
            return text
        ids = self.image_position_idx[:seq_len]
        image = self.image_rel_pos_bias(self.image_rp_bucket[ids[-num_queries:]][:, ids], idx).unsqueeze(0)
        if code_masks.all():
            return image
        return torch.where(code_masks.view(-1, 1, 1, 1), image, text)

    def forward(
        self,
        prev_output_tokens: Tensor,
        code_masks: Optional[Tensor] = None,
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[IncrementalState] = None,
        features_only: bool = False,
        full_context_alignment: bool = False,
        alignment_layer: Optional[int] = None,
        alignment_heads: Optional[int] = None,
        src_lengths: Optional[Any] = None,
        return_all_hiddens: bool = False,
    ):
        """Decode; returns (logits or features (B, T, C), {"attn": [..], "inner_states": [..]})."""
        x, extra = self.extract_features(prev_output_tokens, code_masks=code_masks, encoder_out=encoder_out,
                                         incremental_state=incremental_state,
                                         full_context_alignment=full_context_alignment,
                                         alignment_layer=alignment_layer, alignment_heads=alignment_heads)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(
        self,
        prev_output_tokens: Tensor,
        code_masks: Optional[Tensor] = None,
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[IncrementalState] = None,
        full_context_alignment: bool = False,
        alignment_layer: Optional[int] = None,
        alignment_heads: Optional[int] = None,
    ):
        bsz, tgt_len = prev_output_tokens.shape
        if alignment_layer is None:
            alignment_layer = len(self.layers) - 1
        enc = encoder_out["encoder_out"][0] if encoder_out and encoder_out["encoder_out"] else None
        enc_padding = (encoder_out["encoder_padding_mask"][0]
                       if encoder_out and encoder_out["encoder_padding_mask"] else None)

        # text positions are the same in every row: computed (and their biases) once, broadcast over the batch
        tgt_pos = self.embed_positions(torch.arange(tgt_len, device=prev_output_tokens.device).unsqueeze(0))
        if code_masks is not None and code_masks.any():
            if self.use_ofasys:
                raise ValueError("--use-ofasys decoders have no image-code positions: they cannot generate images")
            image_ids = self.image_position_idx[:tgt_len].expand(bsz, -1)
            tgt_pos = torch.where(code_masks.view(-1, 1, 1), self.embed_image_positions(image_ids), tgt_pos)
        tokens = prev_output_tokens
        if incremental_state is not None:
            # Earlier positions are cached: only the newest one is computed.
            tokens = prev_output_tokens[:, -1:]
        num_queries = tokens.size(1)
        self_pos_bias, cross_pos_bias = self._position_biases(tgt_pos, encoder_out["position_embeddings"][0],
                                                              code_masks, num_queries, incremental_state, bsz)
        tgt_pos = tgt_pos[:, -num_queries:]
        cross_pos_bias = cross_pos_bias.flatten(0, 1)  # (B*H, Q, S), or (H, Q, S) broadcast over the rows

        x = self.embed_scale * self.embed_tokens(tokens)
        if self.add_positions_to_input:
            x = x + tgt_pos
        x = self._layernorm_embedding(x, code_masks)
        x = self.dropout(x).transpose(0, 1)

        self_attn_padding_mask = tokens.eq(self.padding_idx) if tokens.eq(self.padding_idx).any() else None
        self_attn_mask = None
        if incremental_state is None and not full_context_alignment:
            self_attn_mask = self.buffered_future_mask(x)
        attn, inner_states = None, [x]
        prompts = self.decoder_prompt_encoder(bsz) if self.decoder_prompt_encoder is not None else None
        for idx, layer in enumerate(self.layers):
            self_bias = self_pos_bias + self._rel_pos_bias(tgt_len, idx, code_masks, num_queries)
            x, layer_attn = self.run_layer(layer, x, enc, enc_padding, incremental_state,
                                           self_attn_mask=self_attn_mask,
                                           self_attn_padding_mask=self_attn_padding_mask,
                                           # alignment weights are only read at inference; skip them in training
                                           need_head_weights=idx == alignment_layer and not self.training,
                                           self_attn_bias=self_bias.flatten(0, 1),
                                           cross_attn_bias=cross_pos_bias,
                                           prompt_kv=None if prompts is None else prompts[idx])
            inner_states.append(x)
            if layer_attn is not None and idx == alignment_layer:
                attn = layer_attn.float().to(x)
        if attn is not None:
            attn = (attn[:alignment_heads] if alignment_heads is not None else attn).mean(dim=0)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return x.transpose(0, 1), {"attn": [attn], "inner_states": inner_states}

    def _layernorm_embedding(self, x: Tensor, code_masks: Optional[Tensor]) -> Tensor:
        if self.layernorm_embedding is None:
            return x
        if code_masks is None or not code_masks.any() or self.code_layernorm_embedding is None:
            return self.layernorm_embedding(x)
        if code_masks.all():
            return self.code_layernorm_embedding(x)
        return torch.where(code_masks.view(-1, 1, 1), self.code_layernorm_embedding(x), self.layernorm_embedding(x))

    def output_layer(self, features: Tensor, columns: Optional[Tensor] = None) -> Tensor:
        """Logits over the vocabulary, or only over the token ids ``columns`` (constrained decoding: the rest
        would be masked anyway, and the projection is most of a decoding step)."""
        if columns is None:
            weight = self.output_projection.weight
            if weight.requires_grad and torch.is_grad_enabled():
                return _LinearOwningWeightGrad.apply(features, weight)
            return self.output_projection(features)
        return F.linear(features, self.output_projection.weight[columns])

    def max_positions(self) -> int:
        return self.max_target_positions

    def buffered_future_mask(self, tensor: Tensor) -> Tensor:
        dim = tensor.size(0)
        if self._future_mask.size(0) < dim or self._future_mask.device != tensor.device:
            self._future_mask = torch.triu(torch.full((dim, dim), float("-inf")), 1)
        self._future_mask = self._future_mask.to(tensor)
        return self._future_mask[:dim, :dim]
