"""OFA's attention and Transformer layers: pre-LN blocks with additive position biases and NormFormer options."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import utils
from fairseq.incremental_decoding_utils import with_incremental_state
from fairseq.modules import LayerNorm
from torch import Tensor
from torch.utils.checkpoint import checkpoint

IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


class ActivationCheckpointing:
    """``--checkpoint-activations``: keep only each layer's inputs and recompute the layer during backward;
    ``--offload-activations`` also moves those inputs to CPU memory (a GPU saving; on CPU it is the same)."""

    def __init__(self, enabled: bool = False, offload: bool = False):
        self.enabled = enabled or offload
        self.offload = offload

    def __call__(self, module: nn.Module, *args, **kwargs):
        """``module(*args, **kwargs)``, checkpointed when enabled and a backward pass can follow."""
        return self.call(module, module, *args, **kwargs)

    def call(self, function: Callable, owner: nn.Module, *args, **kwargs):
        """``function(*args, **kwargs)``, checkpointed like ``owner``: its training flag decides, and its buffers
        (all the buffers ``function`` updates) are kept from moving twice."""
        if not (self.enabled and owner.training and torch.is_grad_enabled()):
            return function(*args, **kwargs)
        forward = _RecomputeKeepingBuffers(function, owner)
        if self.offload and any(torch.is_tensor(a) and a.is_cuda for a in args):
            with torch.autograd.graph.save_on_cpu(pin_memory=True):
                return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        # the RNG state is restored for the recomputation, so dropout masks are the same
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)


class _RecomputeKeepingBuffers:
    """Calls ``function``; from the second call on (the recomputation in backward) the buffers of ``owner`` are
    put back afterwards, so BatchNorm running statistics move once per step, as without checkpointing."""

    def __init__(self, function: Callable, owner: nn.Module):
        self.function = function
        self.owner = owner
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            return self.function(*args, **kwargs)
        saved = [buffer.clone() for buffer in self.owner.buffers()]
        try:
            return self.function(*args, **kwargs)
        finally:  # also when torch stops the recomputation early, once it has what backward needs
            with torch.no_grad():
                for buffer, value in zip(self.owner.buffers(), saved):
                    buffer.copy_(value)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample (``batch_dim`` indexes samples)."""

    def __init__(self, drop_prob: float, batch_dim: int = 1):
        super().__init__()
        self.drop_prob = drop_prob
        self.batch_dim = batch_dim

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = [1] * x.ndim
        shape[self.batch_dim] = x.shape[self.batch_dim]
        mask = (keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)).floor_()
        return x.div(keep_prob) * mask

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


@with_incremental_state
class MultiheadAttention(nn.Module):
    """Multi-head attention taking an additive per-head bias (``attn_bias``, shape (B*H, T, S), or (H, T, S)
    shared by all rows).

    Queries are scaled by ``(head_dim * scale_factor) ** -0.5``; ``scale_heads`` adds NormFormer's
    per-head gains ``c_attn``. Uses ``scaled_dot_product_attention`` unless weights are requested.
    """

    def __init__(self, embed_dim: int, num_heads: int, kdim: Optional[int] = None, vdim: Optional[int] = None,
                 dropout: float = 0.0, self_attention: bool = False, encoder_decoder_attention: bool = False,
                 scale_factor: float = 2.0, scale_heads: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.scaling = float(self.head_dim * scale_factor) ** -0.5
        self.self_attention = self_attention
        self.encoder_decoder_attention = encoder_decoder_attention
        # Registered first so the state-dict order matches released checkpoints.
        self.c_attn = nn.Parameter(torch.ones(num_heads)) if scale_heads else None
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        gain = 2 ** -0.5 if (kdim or embed_dim) == embed_dim and (vdim or embed_dim) == embed_dim else 1.0
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(proj.weight, gain=gain)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.constant_(self.out_proj.bias, 0.0)

    def _split_heads(self, x: Tensor, bsz: int) -> Tensor:
        """(L, B, E) -> (B, H, L, D)."""
        return x.view(-1, bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor],
        key_padding_mask: Optional[Tensor] = None,
        incremental_state: Optional[IncrementalState] = None,
        need_weights: bool = False,
        need_head_weights: bool = False,
        static_kv: bool = False,
        attn_mask: Optional[Tensor] = None,
        attn_bias: Optional[Tensor] = None,
        prompt_kv: Optional[Tensor] = None,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Attend ``query`` (T, B, E) to ``key`` (S, B, E); returns the output and optional weights.

        ``prompt_kv`` (2, B, H, P, D) are prefix-tuning keys/values put before the keys; masks and biases
        cover the ordinary keys only.
        """
        tgt_len, bsz, _ = query.shape
        saved_state = self._get_input_buffer(incremental_state) if incremental_state is not None else None
        if saved_state is not None and static_kv and "prev_key" in saved_state:
            key = None  # cached encoder keys/values are reused as they are

        q = self._split_heads(self.q_proj(query) * self.scaling, bsz)
        k = v = None
        if key is not None:
            # the key batch may be smaller than the query batch (static keys shared by groups of rows)
            k = self._split_heads(self.k_proj(key), key.size(1))
            v = self._split_heads(self.v_proj(key), key.size(1))

        if incremental_state is not None:
            new_len = 0 if k is None else k.size(2)
            if "prev_key" in saved_state:
                if static_kv:
                    k, v = saved_state["prev_key"], saved_state["prev_value"]
                else:
                    k = torch.cat([saved_state["prev_key"], k], dim=2)
                    v = torch.cat([saved_state["prev_value"], v], dim=2)
            elif static_kv:
                # read at every step: contiguous once here, rather than copied by every step's matmul
                k, v = k.contiguous(), v.contiguous()
                saved_state["query_rows_per_key"] = torch.tensor(bsz // k.size(0))
            key_padding_mask = self._merge_padding_masks(saved_state.get("prev_key_padding_mask"), key_padding_mask,
                                                         bsz, k.size(2) - new_len, new_len, static_kv)
            saved_state["prev_key"], saved_state["prev_value"] = k, v
            saved_state["prev_key_padding_mask"] = key_padding_mask
            self._set_input_buffer(incremental_state, saved_state)

        src_len = k.size(2)
        mask = None
        if prompt_kv is not None:
            k = torch.cat([prompt_kv[0], k], dim=2)
            v = torch.cat([prompt_kv[1], v], dim=2)
        if attn_bias is not None:  # per row, or one bias broadcast over all rows
            mask = attn_bias.reshape(-1, self.num_heads, tgt_len, src_len)
        # Each sentence's encoder keys serve a group of consecutive query rows (its beams; all candidates of
        # one question): the rows become queries of their sentence instead of copies of its keys.
        groups = k.size(0)
        shared_kv = static_kv and groups < bsz
        if shared_kv:
            if bsz % groups:
                raise ValueError(f"{bsz} query rows cannot share the keys of {groups} sentences evenly")
            q = self._group_rows(q, groups)
            if mask is not None:
                mask = self._group_rows(mask.expand(bsz, -1, -1, -1), groups)
        if attn_mask is not None:
            mask = attn_mask if mask is None else mask + attn_mask
        if key_padding_mask is not None:
            pad = key_padding_mask.view(k.size(0), 1, 1, src_len).to(torch.bool)
            mask = (q.new_zeros(pad.shape) if mask is None else mask).masked_fill(pad, float("-inf"))
        if mask is not None:
            mask = mask.to(q.dtype)
            if prompt_kv is not None:
                mask = F.pad(mask, (prompt_kv.size(3), 0))  # prompts are visible to every query

        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or need_head_weights:
            scores = torch.matmul(q, k.transpose(-1, -2))
            if mask is not None:
                scores = scores + mask
            probs = utils.softmax(scores, dim=-1).type_as(scores)
            out = torch.matmul(F.dropout(probs, p=dropout_p, training=self.training), v)
            weights = (self._ungroup_rows(probs, bsz) if shared_kv else probs).transpose(0, 1)  # (H, B, T, S)
            if not need_head_weights:
                weights = weights.mean(dim=0)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=1.0)
        if shared_kv:
            out = self._ungroup_rows(out, bsz)

        if self.c_attn is not None:
            out = out * self.c_attn.view(1, -1, 1, 1)
        out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, self.embed_dim)
        return self.out_proj(out), weights

    @staticmethod
    def _group_rows(x: Tensor, groups: int) -> Tensor:
        """(B, H, T, X) -> (G, H, B/G*T, X): consecutive rows as more queries of their group."""
        bsz, heads, tgt_len, last = x.shape
        return x.view(groups, bsz // groups, heads, tgt_len, last).transpose(1, 2).reshape(groups, heads, -1, last)

    @staticmethod
    def _ungroup_rows(x: Tensor, bsz: int) -> Tensor:
        """The inverse of :meth:`_group_rows`: (G, H, B/G*T, X) -> (B, H, T, X)."""
        groups, heads, queries, last = x.shape
        rows = bsz // groups
        return x.view(groups, heads, rows, queries // rows, last).transpose(1, 2).reshape(bsz, heads, -1, last)

    @staticmethod
    def _merge_padding_masks(prev: Optional[Tensor], new: Optional[Tensor], bsz: int, prev_len: int,
                             new_len: int, static_kv: bool) -> Optional[Tensor]:
        """Key padding mask over cached plus new keys during incremental decoding."""
        if static_kv:
            return prev if prev is not None else new  # the encoder's mask does not change between steps
        if prev is None and new is None:
            return None
        if prev is None:
            prev = new.new_zeros(bsz, prev_len)
        if new is None:
            new = prev.new_zeros(bsz, new_len)
        return torch.cat([prev.to(torch.bool), new.to(torch.bool)], dim=1)

    def reorder_incremental_state(self, incremental_state: IncrementalState, new_order: Tensor) -> None:
        """Reorder cached keys/values after a beam-search step."""
        buffer = self._get_input_buffer(incremental_state)
        if self.encoder_decoder_attention and "prev_key" in buffer:
            # Encoder keys are identical across the beams of a sentence, which are consecutive rows: they only
            # change when sentences leave the batch. Keys of one sentence shared by all rows stay shared.
            rows = int(buffer["query_rows_per_key"])
            keys = buffer["prev_key"].size(0)
            if keys == 1 or keys * rows == new_order.size(0):
                return
            new_order = new_order[::rows] // rows  # the sentence of each remaining group
        for name, value in buffer.items():
            if value is not None and name != "query_rows_per_key":
                buffer[name] = value.index_select(0, new_order)
        self._set_input_buffer(incremental_state, buffer)

    def _get_input_buffer(self, incremental_state: Optional[IncrementalState]) -> Dict[str, Optional[Tensor]]:
        result = self.get_incremental_state(incremental_state, "attn_state")
        return result if result is not None else {}

    def _set_input_buffer(self, incremental_state: IncrementalState, buffer: Dict[str, Optional[Tensor]]):
        return self.set_incremental_state(incremental_state, "attn_state", buffer)


class Adapter(nn.Module):
    """Bottleneck adapter added to the FFN output: x + up(relu(down(x))); zero-initialised ``up`` starts as identity."""

    def __init__(self, embed_dim: int, adapter_dim: int):
        super().__init__()
        self.down_proj = nn.Linear(embed_dim, adapter_dim)
        self.up_proj = nn.Linear(adapter_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.down_proj.weight, std=0.02)
        nn.init.zeros_(self.down_proj.bias)
        nn.init.zeros_(self.up_proj.weight)
        nn.init.zeros_(self.up_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up_proj(F.relu(self.down_proj(x)))


class PromptEncoder(nn.Module):
    """Prefix tuning: ``length`` learned prompts giving keys and values for every layer.

    With ``projection`` the prompts go through an MLP (embed_dim -> proj_dim -> layers * 2 * embed_dim).
    """

    def __init__(self, length: int, embed_dim: int, num_heads: int, num_layers: int, projection: bool = False,
                 proj_dim: Optional[int] = None, dropout: float = 0.2):
        super().__init__()
        self.length, self.num_heads, self.num_layers = length, num_heads, num_layers
        self.head_dim = embed_dim // num_heads
        out_dim = num_layers * 2 * embed_dim
        if projection:
            self.embedding = nn.Embedding(length, embed_dim)
            self.trans = nn.Sequential(nn.Linear(embed_dim, proj_dim or 2 * embed_dim), nn.ReLU(),
                                       nn.Linear(proj_dim or 2 * embed_dim, out_dim))
        else:
            self.embedding = nn.Embedding(length, out_dim)
            self.trans = None
        self.dropout = nn.Dropout(dropout)

    def forward(self, bsz: int) -> list[Tensor]:
        """Per layer, a (2, B, H, P, D) tensor of prompt keys and values."""
        prompts = self.embedding.weight
        if self.trans is not None:
            prompts = self.trans(prompts)
        kv = prompts.view(1, self.length, self.num_layers * 2, self.num_heads, self.head_dim).expand(bsz, -1, -1, -1, -1)
        kv = self.dropout(kv).permute(2, 0, 3, 1, 4)
        return list(kv.split(2))


class _Block(nn.Module):
    """What both layer types share: dropouts, drop path, the residual attention block and the FFN."""

    def _init_dropouts(self, args, drop_path_rate: float) -> None:
        self.adapter = Adapter(self.fc1.in_features, args.adapter_dim) if getattr(args, "adapter", False) else None
        self.dropout = nn.Dropout(args.dropout)
        self.activation_fn = utils.get_activation_fn(getattr(args, "activation_fn", "relu") or "relu")
        activation_dropout = getattr(args, "activation_dropout", 0) or getattr(args, "relu_dropout", 0) or 0
        self.activation_dropout = nn.Dropout(float(activation_dropout))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0.0 else nn.Identity()

    def _ffn(self, x: Tensor) -> Tensor:
        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.activation_dropout(self.activation_fn(self.fc1(x)))
        if self.ffn_layernorm is not None:
            x = self.ffn_layernorm(x)
        x = self.dropout(self.fc2(x))
        if self.adapter is not None:
            x = self.adapter(x)
        if self.w_resid is not None:
            residual = self.w_resid * residual
        x = residual + self.drop_path(x)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x

    def _attention_block(self, x: Tensor, layer_norm: nn.Module, scale_ln: Optional[nn.Module], attend) -> tuple:
        residual = x
        if self.normalize_before:
            x = layer_norm(x)
        x, weights = attend(x)
        if scale_ln is not None:
            x = scale_ln(x)
        x = residual + self.drop_path(self.dropout(x))
        if not self.normalize_before:
            x = layer_norm(x)
        return x, weights


class TransformerEncoderLayer(_Block):
    """Encoder block: self-attention with position bias, then FFN."""

    def __init__(self, args, drop_path_rate: float = 0.0):
        super().__init__()
        dim, ffn_dim = args.encoder_embed_dim, args.encoder_ffn_embed_dim
        self.w_resid = nn.Parameter(torch.ones(dim)) if getattr(args, "scale_resids", False) else None
        self.self_attn = MultiheadAttention(dim, args.encoder_attention_heads, dropout=args.attention_dropout,
                                            self_attention=True, scale_factor=args.attn_scale_factor,
                                            scale_heads=getattr(args, "scale_heads", False))
        self.self_attn_layer_norm = LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.attn_ln = LayerNorm(dim) if getattr(args, "scale_attn", False) else None
        self.ffn_layernorm = LayerNorm(ffn_dim) if getattr(args, "scale_fc", False) else None
        self.final_layer_norm = LayerNorm(dim)
        self.normalize_before = args.encoder_normalize_before
        self._init_dropouts(args, drop_path_rate)

    def forward(self, x: Tensor, encoder_padding_mask: Optional[Tensor], self_attn_bias: Optional[Tensor] = None,
                prompt_kv: Optional[Tensor] = None) -> Tensor:
        x, _ = self._attention_block(
            x, self.self_attn_layer_norm, self.attn_ln,
            lambda h: self.self_attn(h, h, key_padding_mask=encoder_padding_mask, attn_bias=self_attn_bias,
                                     prompt_kv=prompt_kv))
        return self._ffn(x)


class TransformerDecoderLayer(_Block):
    """Decoder block: causal self-attention, cross-attention (both with position bias), then FFN."""

    def __init__(self, args, drop_path_rate: float = 0.0):
        super().__init__()
        dim, ffn_dim, heads = args.decoder_embed_dim, args.decoder_ffn_embed_dim, args.decoder_attention_heads
        scale_attn, scale_heads = getattr(args, "scale_attn", False), getattr(args, "scale_heads", False)
        self.w_resid = nn.Parameter(torch.ones(dim)) if getattr(args, "scale_resids", False) else None
        self.self_attn = MultiheadAttention(dim, heads, dropout=args.attention_dropout, self_attention=True,
                                            scale_factor=args.attn_scale_factor, scale_heads=scale_heads)
        self.self_attn_ln = LayerNorm(dim) if scale_attn else None
        self.cross_attn_ln = LayerNorm(dim) if scale_attn else None
        self.self_attn_layer_norm = LayerNorm(dim)
        self.encoder_attn = MultiheadAttention(dim, heads, kdim=args.encoder_embed_dim, vdim=args.encoder_embed_dim,
                                               dropout=args.attention_dropout, encoder_decoder_attention=True,
                                               scale_factor=args.attn_scale_factor, scale_heads=scale_heads)
        self.encoder_attn_layer_norm = LayerNorm(dim)
        self.ffn_layernorm = LayerNorm(ffn_dim) if getattr(args, "scale_fc", False) else None
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = LayerNorm(dim)
        self.normalize_before = args.decoder_normalize_before
        self._init_dropouts(args, drop_path_rate)

    def forward(
        self,
        x: Tensor,
        encoder_out: Optional[Tensor],
        encoder_padding_mask: Optional[Tensor],
        incremental_state: Optional[IncrementalState] = None,
        self_attn_mask: Optional[Tensor] = None,
        self_attn_padding_mask: Optional[Tensor] = None,
        need_head_weights: bool = False,
        self_attn_bias: Optional[Tensor] = None,
        cross_attn_bias: Optional[Tensor] = None,
        prompt_kv: Optional[Tensor] = None,
    ) -> tuple[Tensor, Optional[Tensor]]:
        x, _ = self._attention_block(
            x, self.self_attn_layer_norm, self.self_attn_ln,
            lambda h: self.self_attn(h, h, key_padding_mask=self_attn_padding_mask, incremental_state=incremental_state,
                                     attn_mask=self_attn_mask, attn_bias=self_attn_bias, prompt_kv=prompt_kv))
        attn = None
        if encoder_out is not None:
            x, attn = self._attention_block(
                x, self.encoder_attn_layer_norm, self.cross_attn_ln,
                lambda h: self.encoder_attn(h, encoder_out, key_padding_mask=encoder_padding_mask,
                                            incremental_state=incremental_state, static_kv=True,
                                            need_head_weights=need_head_weights, attn_bias=cross_attn_bias))
        return self._ffn(x), attn
