"""Beam search and sampling over an ensemble of encoder-decoder models, with OFA's decoding rules.

Same interface and search as the original OFA generator (fairseq's, extended with vocabulary
constraints, decoder prompts, image-code and box generation); the search strategies themselves
are fairseq's (``fairseq.search``).
"""
from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import search
from fairseq.models import FairseqIncrementalDecoder
from torch import Tensor

from data.dictionary import VocabLayout
from utils.trie import Trie

BOX_TOKENS_PER_OBJECT = 5  # four <bin_i> coordinates, then one non-bin token (label or eos)


@dataclass
class VocabConstraint:
    """The tokens the hypotheses may write at one step (a constraint trie or ``--constraint-range``)."""

    allowed: Tensor  # bool, (hypotheses, vocab) or (vocab,) shared by all hypotheses
    columns: Optional[Tensor]  # the ids some hypothesis may write, ascending; None when that is every id

    def apply(self, scores: Tensor) -> Tensor:
        """Set the scores of disallowed tokens to -inf, in place."""
        return scores.masked_fill_(~self.allowed, -math.inf)


class RepeatNGramBlocker(nn.Module):
    """Bans every token that would repeat an n-gram already in the hypothesis (``--no-repeat-ngram-size``).

    Called like fairseq's ``NGramRepeatBlock``, but it reads only the tokens written so far
    (``tokens[:, :step + 1]``), not the padded buffer, so it blocks on every device.
    """

    def __init__(self, ngram_size: int):
        super().__init__()
        if ngram_size < 1:
            raise ValueError(f"--no-repeat-ngram-size must be positive, got {ngram_size}")
        self.ngram_size = ngram_size

    def forward(self, tokens: Tensor, lprobs: Tensor, bsz: int, beam_size: int, step: int) -> Tensor:
        n = self.ngram_size
        written = tokens[:, : step + 1]
        if written.size(1) < n:
            return lprobs
        ngrams = written.unfold(1, n, 1)  # (hypotheses, positions, n)
        suffix = written[:, written.size(1) - (n - 1):]  # the n-1 tokens the next token extends
        repeats = (ngrams[:, :, : n - 1] == suffix.unsqueeze(1)).all(dim=2)
        rows, positions = repeats.nonzero(as_tuple=True)
        lprobs[rows, ngrams[rows, positions, n - 1]] = -math.inf
        return lprobs


def _divide(logits: Tensor, temperature: float) -> Tensor:
    """``logits / temperature``; at temperature 1 the logits themselves (the same values, one pass fewer over
    the vocabulary)."""
    return logits if temperature == 1.0 else logits / temperature


class EnsembleModel(nn.Module):
    """Runs several encoder-decoder models in lockstep and averages their next-token distributions."""

    def __init__(self, models: Sequence[nn.Module], incremental: Optional[bool] = None,
                 project_allowed_only: bool = True, share_encoder_rows: Optional[bool] = None):
        """``incremental``: cache decoder keys/values between steps (default: when every decoder can).
        ``project_allowed_only``: when a constraint masks the logits, compute them only for the tokens it allows
        (decoders whose ``output_layer`` takes ``columns``); the masked softmax is the same up to float rounding
        (False: the full projection, then the mask, as the original does).
        ``share_encoder_rows``: the beams of a sentence attend to its one encoder output (keys and values
        projected once per sentence, not per beam) instead of copies of it; the same up to float rounding
        (default: when every decoder has ``attends_shared_encoder_rows``; False: copies, as the original)."""
        super().__init__()
        self.models = nn.ModuleList(models)
        self.models_size = len(self.models)
        can_cache = all(isinstance(getattr(m, "decoder", None), FairseqIncrementalDecoder) for m in self.models)
        if incremental and not can_cache:
            raise ValueError("incremental decoding needs FairseqIncrementalDecoder decoders in every model")
        self.incremental = can_cache if incremental is None else incremental
        can_share = all(getattr(getattr(m, "decoder", None), "attends_shared_encoder_rows", False)
                        for m in self.models)
        if share_encoder_rows and not can_share:
            raise ValueError("share_encoder_rows needs decoders with attends_shared_encoder_rows in every model")
        self.share_encoder_rows = can_share if share_encoder_rows is None else share_encoder_rows
        # OFA decoders take code_masks (image-code generation); plain fairseq decoders do not
        self._takes_code_masks = [
            "code_masks" in inspect.signature(m.decoder.forward).parameters for m in self.models
        ]
        self._projects_columns = [
            project_allowed_only and "columns" in inspect.signature(m.decoder.output_layer).parameters
            for m in self.models
        ]

    def has_encoder(self) -> bool:
        return hasattr(self.models[0], "encoder")

    def has_incremental_states(self) -> bool:
        return self.incremental

    def max_decoder_positions(self) -> int:
        return min([m.max_decoder_positions() for m in self.models if hasattr(m, "max_decoder_positions")]
                   + [sys.maxsize])

    def forward_encoder(self, net_input: Dict[str, Tensor]) -> Optional[List[Dict[str, List[Tensor]]]]:
        if not self.has_encoder():
            return None
        encoder_input = {k: v for k, v in net_input.items() if k != "prev_output_tokens"}
        return [model.encoder(**encoder_input) for model in self.models]

    def forward_decoder(
        self,
        tokens: Tensor,
        encoder_outs: Optional[List[Dict[str, List[Tensor]]]],
        incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]],
        temperature: float = 1.0,
        constraint: Optional[VocabConstraint] = None,
        constrain_logits: bool = True,
        gen_code: bool = False,
    ):
        """Next-token log-probs (hypotheses x vocab) and attention (or None) averaged over the ensemble.

        ``constraint`` masks disallowed tokens, on the logits (renormalised over what is left) or, with
        ``constrain_logits=False`` (zero-shot), on the log-probs.
        """
        columns = constraint.columns if constraint is not None and constrain_logits else None
        lprobs_per_model, attn_sum = [], None
        for i, model in enumerate(self.models):
            decoder_kwargs = {}
            if encoder_outs is not None:
                decoder_kwargs["encoder_out"] = encoder_outs[i]
            if self.incremental:
                decoder_kwargs["incremental_state"] = incremental_states[i]
            if self._takes_code_masks[i]:
                decoder_kwargs["code_masks"] = torch.full(
                    (tokens.size(0),), gen_code, dtype=torch.bool, device=tokens.device
                )
            if columns is not None and self._projects_columns[i]:
                features, extra = model.decoder(tokens, features_only=True, **decoder_kwargs)
                allowed_logits = _divide(model.decoder.output_layer(features[:, -1:, :], columns=columns),
                                         temperature)
                logits = allowed_logits.new_full((*allowed_logits.shape[:2], constraint.allowed.size(-1)),
                                                 -math.inf)
                logits[:, :, columns] = allowed_logits
            else:
                decoder_out = model.decoder(tokens, **decoder_kwargs)
                extra = decoder_out[1] if len(decoder_out) > 1 else None
                logits = _divide(decoder_out[0][:, -1:, :], temperature)
            attn = self._last_step_attention(extra)

            if constraint is not None and constrain_logits:
                constraint.apply(logits[:, -1, :])
            lprobs = model.get_normalized_probs((logits, extra), log_probs=True, sample=None)[:, -1, :]
            if constraint is not None and not constrain_logits:
                constraint.apply(lprobs)
            if self.models_size == 1:
                return lprobs, attn
            lprobs_per_model.append(lprobs)
            if attn is not None:
                attn_sum = attn if attn_sum is None else attn_sum + attn

        avg_lprobs = torch.logsumexp(torch.stack(lprobs_per_model), dim=0) - math.log(self.models_size)
        avg_attn = attn_sum / self.models_size if attn_sum is not None else None
        return avg_lprobs, avg_attn

    @staticmethod
    def _last_step_attention(extra) -> Optional[Tensor]:
        if extra is None:
            return None
        attn = extra if isinstance(extra, Tensor) else extra.get("attn")
        if isinstance(attn, (list, tuple)):
            attn = attn[0] if attn else None
        return attn[:, -1, :] if attn is not None else None

    def reorder_encoder_out(self, encoder_outs, new_order: Tensor):
        if encoder_outs is None:
            return None
        return [model.encoder.reorder_encoder_out(out, new_order) for model, out in zip(self.models, encoder_outs)]

    def reorder_incremental_state(self, incremental_states, new_order: Tensor) -> None:
        if not self.incremental:
            return
        for model, state in zip(self.models, incremental_states):
            model.decoder.reorder_incremental_state_scripting(state, new_order)


class SequenceGenerator(nn.Module):
    """Generates hypotheses with beam search (or a given ``fairseq.search`` strategy), OFA's options included."""

    def __init__(
        self,
        models,
        tgt_dict,
        beam_size: int = 1,
        max_len_a: float = 0,
        max_len_b: int = 200,
        max_len: int = 0,
        min_len: int = 1,
        normalize_scores: bool = True,
        len_penalty: float = 1.0,
        unk_penalty: float = 0.0,
        temperature: float = 1.0,
        match_source_len: bool = False,
        no_repeat_ngram_size: int = 0,
        search_strategy: Optional[search.Search] = None,
        eos: Optional[int] = None,
        symbols_to_strip_from_output: Optional[set] = None,
        lm_model: Optional[nn.Module] = None,
        lm_weight: float = 1.0,
        constraint_trie: Optional[Trie] = None,
        constraint_range: Optional[str] = None,
        gen_code: bool = False,
        gen_box: bool = False,
        bins_only: bool = False,
        ignore_eos: bool = False,
        zero_shot: bool = False,
    ):
        """Lengths exclude eos: outputs have at most ``max_len_a * src_len + max_len_b`` tokens (capped by
        ``max_len`` when it is positive; OFA does not cap by the decoder's positions). ``constraint_range``
        ("start,end") allows only ids in [start, end) plus the special symbols; ``constraint_trie`` only
        continuations inside the trie. ``gen_code``/``gen_box`` write only ``<code_i>``/``<bin_i>`` tokens.
        ``bins_only`` (RefCOCO boxes) allows only ``<bin_i>`` tokens and eos, masked in the log-probs so that
        the bins keep the model's own scores and a model that writes bins anyway decodes as without it.
        """
        super().__init__()
        self.model = models if isinstance(models, EnsembleModel) else EnsembleModel(models)
        self.tgt_dict = tgt_dict
        self.pad = tgt_dict.pad()
        self.unk = tgt_dict.unk()
        self.bos = tgt_dict.bos()
        self.eos = tgt_dict.eos() if eos is None else eos
        self.symbols_to_strip_from_output = (
            symbols_to_strip_from_output.union({self.eos})
            if symbols_to_strip_from_output is not None
            else {self.bos, self.eos}
        )
        self.vocab_size = len(tgt_dict)
        self.beam_size = min(beam_size, self.vocab_size - 1)  # pad is never selected
        self.max_len_a = max_len_a
        self.max_len_b = max_len_b
        self.max_len = max_len
        self.min_len = min_len
        self.normalize_scores = normalize_scores
        self.len_penalty = len_penalty
        self.unk_penalty = unk_penalty
        if temperature <= 0:
            raise ValueError(f"--temperature must be greater than 0, got {temperature}")
        self.temperature = temperature
        self.match_source_len = match_source_len
        self.repeat_ngram_blocker = RepeatNGramBlocker(no_repeat_ngram_size) if no_repeat_ngram_size > 0 else None
        self.search = search.BeamSearch(tgt_dict) if search_strategy is None else search_strategy
        self.should_set_src_lengths = getattr(self.search, "needs_src_lengths", False)
        self.lm_model = lm_model
        self.lm_weight = lm_weight
        self.gen_code = gen_code
        self.gen_box = gen_box
        self.bins_only = bins_only
        self.ignore_eos = ignore_eos
        self.zero_shot = zero_shot

        self.constraint_trie = constraint_trie
        self.vocab = VocabLayout.of(tgt_dict)
        constraint = self.vocab.parse_range(constraint_range)
        if (gen_box or bins_only) and not self.vocab.bins:
            raise ValueError("gen_box and bins_only need <bin_i> symbols in the target dictionary")
        if constraint is None and (gen_code or gen_box):
            # the original relies on the task's --constraint-range; default to the tokens these modes write
            constraint = self.vocab.codes if gen_code else range(self.vocab.bins.start, self.vocab.size)
            if not constraint:
                raise ValueError("gen_code needs <code_i> symbols in the target dictionary")
        self.constraint_start: Optional[int] = None if constraint is None else constraint.start
        self.constraint_end: Optional[int] = None if constraint is None else constraint.stop
        if self.constraint_trie is not None and self.constraint_start is not None:
            raise ValueError("use either a constraint trie or a constraint range, not both")

        self.model.eval()
        if self.lm_model is not None:
            self.lm_model.eval()

    @torch.no_grad()
    def forward(self, sample, prefix_tokens: Optional[Tensor] = None, bos_token: Optional[int] = None):
        return self.generate(self.model, sample, prefix_tokens=prefix_tokens, bos_token=bos_token)

    @torch.no_grad()
    def generate(
        self,
        models,
        sample: Dict[str, Dict[str, Tensor]],
        prefix_tokens: Optional[Tensor] = None,
        constraints: Optional[Tensor] = None,
        bos_token: Optional[int] = None,
    ) -> List[List[Dict[str, Tensor]]]:
        """Per sample, up to ``beam_size`` hypotheses (``tokens`` ending with eos, ``score``, ``attention``,
        ``alignment``, ``positional_scores``), best first. ``prefix_tokens`` (bsz x len, pad-filled) are
        forced at the start of the output (decoder prompts); they are part of the returned tokens.
        """
        if isinstance(models, EnsembleModel):
            model = models
        else:
            model = EnsembleModel(models) if models else self.model
        net_input = sample["net_input"]
        src_tokens = net_input["src_tokens"]
        device = src_tokens.device
        bsz, src_len = src_tokens.shape[:2]
        # source length as the original counts it (tokens other than eos and pad), for match_source_len
        src_lengths = (src_tokens.ne(self.eos) & src_tokens.ne(self.pad)).long().sum(dim=1)
        beam_size = self.beam_size
        max_len = self._max_output_length(src_len, src_lengths)

        if constraints is not None and not self.search.supports_constraints:
            raise NotImplementedError("target-side constraints were given, but the search strategy does not "
                                      "support them (use --constraints)")
        self.search.init_constraints(constraints, beam_size)

        encoder_outs = model.forward_encoder(net_input)
        if not model.share_encoder_rows:
            encoder_outs = model.reorder_encoder_out(
                encoder_outs, torch.arange(bsz, device=device).repeat_interleave(beam_size)
            )
        incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]] = [{} for _ in range(model.models_size)]

        # row r holds hypothesis r % beam_size of sentence r // beam_size; one extra column for eos, one for pad
        tokens = torch.full((bsz * beam_size, max_len + 2), self.pad, dtype=torch.long, device=device)
        tokens[:, 0] = self.bos if bos_token is None else bos_token
        scores = torch.zeros(bsz * beam_size, max_len + 1, device=device)  # cumulative log-prob after each step
        attn: Optional[Tensor] = None
        # candidate slots whose hypothesis was already finalized (sampling can end beams one by one)
        cands_to_ignore = torch.zeros(bsz, beam_size, dtype=torch.bool, device=device)
        finalized: List[List[Dict[str, Tensor]]] = [[] for _ in range(bsz)]
        sentence_of_row = list(range(bsz))  # original sentence index of each remaining batch row
        sample_ids = sample["id"] if isinstance(sample.get("id"), Tensor) else torch.arange(bsz, device=device)
        cand_size = 2 * beam_size  # enough candidates that beam_size of them do not end with eos
        bbsz_offsets = (torch.arange(bsz, device=device) * beam_size).unsqueeze(1)
        cand_offsets = torch.arange(cand_size, device=device)

        for step in range(max_len + 1):  # the extra step only writes eos
            written = tokens[:, : step + 1]
            lprobs, step_attn = model.forward_decoder(
                written,
                encoder_outs,
                incremental_states,
                self.temperature,
                constraint=self._vocab_constraint(written, prefix_tokens, beam_size, device),
                constrain_logits=not self.zero_shot,
                gen_code=self.gen_code,
            )
            if self.lm_model is not None:
                lprobs = lprobs + self._lm_lprobs(written, lprobs.size(1))
            if prefix_tokens is not None and step < prefix_tokens.size(1) and step < max_len:
                lprobs, tokens, scores = self._force_prefix(step, lprobs, scores, tokens, prefix_tokens, beam_size)
            elif step < self.min_len:
                lprobs[:, self.eos] = -math.inf
            self._apply_token_rules(step, lprobs, max_len)

            if step_attn is not None:
                if attn is None:
                    attn = torch.empty(bsz * beam_size, step_attn.size(1), max_len + 2, device=device)
                attn[:, :, step + 1].copy_(step_attn)

            scores = scores.type_as(lprobs)
            if self.should_set_src_lengths:
                self.search.set_src_lengths(src_lengths)
            if self.repeat_ngram_blocker is not None:
                lprobs = self.repeat_ngram_blocker(tokens, lprobs, bsz, beam_size, step)

            # (bsz, candidates): cumulative scores, next tokens, and which beam each candidate extends
            cand_scores, cand_indices, cand_beams = self.search.step(
                step,
                lprobs.view(bsz, -1, lprobs.size(-1)),
                scores.view(bsz, beam_size, -1)[:, :, :step],
                tokens[:, : step + 1],
                sample_ids,
            )
            cand_bbsz_idx = cand_beams + bbsz_offsets

            # hypotheses ending with eos among the top beam_size candidates are finished
            eos_mask = cand_indices.eq(self.eos) & cand_scores.ne(-math.inf)
            eos_mask[:, :beam_size][cands_to_ignore] = False
            eos_bbsz_idx = cand_bbsz_idx[:, :beam_size][eos_mask[:, :beam_size]]
            complete_rows: List[int] = []
            if eos_bbsz_idx.numel() > 0:
                eos_scores = cand_scores[:, :beam_size][eos_mask[:, :beam_size]]
                complete_rows = self._finalize_hypos(
                    step, eos_bbsz_idx, eos_scores, tokens, scores, attn,
                    finalized, sentence_of_row, beam_size, src_lengths,
                )
            # a sentence whose candidates are all -inf or eos (e.g. a trie with fewer paths than beams) cannot
            # grow another finite hypothesis: it ends with those it has, where the original would crash
            stuck = ~(cand_indices.ne(self.eos) & cand_scores.ne(-math.inf)).any(dim=1)
            if step >= max_len:
                stuck[:] = True
            if stuck.any():
                complete_rows = sorted(set(complete_rows) | set(stuck.nonzero(as_tuple=True)[0].tolist()))
            if len(complete_rows) == bsz:
                break

            kept_rows: Optional[Tensor] = None
            if complete_rows:
                # drop sentences with beam_size finished hypotheses from every buffer
                keep = torch.ones(bsz, dtype=torch.bool, device=device)
                keep[complete_rows] = False
                kept_rows = torch.arange(bsz, device=device)[keep]
                self.search.prune_sentences(kept_rows)
                eos_mask, cand_beams = eos_mask[kept_rows], cand_beams[kept_rows]
                cand_scores, cand_indices = cand_scores[kept_rows], cand_indices[kept_rows]
                if prefix_tokens is not None:
                    prefix_tokens = prefix_tokens[kept_rows]
                src_lengths = src_lengths[kept_rows]
                cands_to_ignore = cands_to_ignore[kept_rows]
                sample_ids = sample_ids[kept_rows]
                sentence_of_row = [sentence_of_row[i] for i in kept_rows.tolist()]
                new_bsz = kept_rows.numel()
                scores = scores.view(bsz, -1)[kept_rows].view(new_bsz * beam_size, -1)
                tokens = tokens.view(bsz, -1)[kept_rows].view(new_bsz * beam_size, -1)
                if attn is not None:
                    attn = attn.view(bsz, -1)[kept_rows].view(new_bsz * beam_size, attn.size(1), -1)
                bsz = new_bsz
                bbsz_offsets = bbsz_offsets[:bsz]
                cand_bbsz_idx = cand_beams + bbsz_offsets

            # continue with the best beam_size candidates that do not end with eos (ranked by candidate order)
            eos_mask[:, :beam_size] |= cands_to_ignore
            active_mask = eos_mask.long() * cand_size + cand_offsets[: eos_mask.size(1)]
            new_cands_to_ignore, active_hypos = torch.topk(active_mask, k=beam_size, dim=1, largest=False)
            cands_to_ignore = new_cands_to_ignore.ge(cand_size)[:, :beam_size]
            assert (~cands_to_ignore).any(dim=1).all(), "every sentence needs an unfinished hypothesis"

            active_bbsz_idx = torch.gather(cand_bbsz_idx, dim=1, index=active_hypos).view(-1)
            tokens[:, : step + 1] = tokens[active_bbsz_idx, : step + 1]
            tokens.view(bsz, beam_size, -1)[:, :, step + 1] = torch.gather(cand_indices, dim=1, index=active_hypos)
            if step > 0:
                scores[:, :step] = scores[active_bbsz_idx, :step]
            scores.view(bsz, beam_size, -1)[:, :, step] = torch.gather(cand_scores, dim=1, index=active_hypos)
            self.search.update_constraints(active_hypos)
            if attn is not None:
                attn[:, :, : step + 2] = attn[active_bbsz_idx, :, : step + 2]

            # cached states still have the rows of the batch before pruning
            state_order = active_bbsz_idx
            if kept_rows is not None:
                row_sentence = active_bbsz_idx // beam_size
                state_order = active_bbsz_idx + (kept_rows[row_sentence] - row_sentence) * beam_size
                # beams of one sentence share the encoder output, so it only changes when sentences leave
                encoder_outs = model.reorder_encoder_out(
                    encoder_outs, kept_rows if model.share_encoder_rows else state_order)
            model.reorder_incremental_state(incremental_states, state_order)

        for hypos in finalized:
            hypos.sort(key=lambda hypo: float(hypo["score"]), reverse=True)
        return finalized

    def _max_output_length(self, src_len: int, src_lengths: Tensor) -> int:
        if self.match_source_len:
            max_len = int(src_lengths.max())
        else:
            max_len = int(self.max_len_a * src_len + self.max_len_b)
        if self.max_len > 0:
            max_len = min(max_len, self.max_len)
        if self.min_len > max_len:
            raise ValueError(f"min_len ({self.min_len}) cannot be larger than max_len ({max_len}), please adjust these")
        return max_len

    def _vocab_constraint(self, written: Tensor, prefix_tokens: Optional[Tensor], beam_size: int,
                          device: torch.device) -> Optional[VocabConstraint]:
        """This step's trie continuations or allowed id range (None: no constraint)."""
        if self.constraint_trie is not None:
            return self._trie_constraint(written, prefix_tokens, beam_size, device)
        if self.constraint_start is not None:
            allowed = torch.ones(self.vocab_size, dtype=torch.bool, device=device)
            allowed[self.vocab.specials.stop: self.constraint_start] = False
            allowed[self.constraint_end:] = False
            return VocabConstraint(allowed, allowed.nonzero().squeeze(1))
        return None

    def _trie_constraint(self, written: Tensor, prefix_tokens: Optional[Tensor], beam_size: int,
                         device: torch.device) -> VocabConstraint:
        # outside zero-shot mode, the decoder prompt is not part of the trie path and is left unconstrained
        prompt_lengths = None
        if prefix_tokens is not None and not self.zero_shot:
            prompt_lengths = prefix_tokens.ne(self.pad).sum(dim=1).tolist()
        allowed = torch.zeros(written.size(0), self.vocab_size, dtype=torch.bool, device=device)
        unconstrained = False
        rows: List[int] = []
        cols: List[int] = []
        for row, hypo in enumerate(written.tolist()):
            if self.zero_shot:
                path = hypo
            else:
                prompt_len = prompt_lengths[row // beam_size] if prompt_lengths is not None else 0
                if len(hypo) <= prompt_len:
                    allowed[row] = True
                    unconstrained = True
                    continue
                path = [self.bos] + hypo[prompt_len + 1:]
            next_tokens = self.constraint_trie.get_next_layer(path)
            rows.extend([row] * len(next_tokens))
            cols.extend(next_tokens)
        index = torch.tensor([rows, cols], dtype=torch.long, device=device)
        allowed[index[0], index[1]] = True
        columns = None if unconstrained else torch.tensor(sorted(set(cols)), dtype=torch.long, device=device)
        return VocabConstraint(allowed, columns)

    def _lm_lprobs(self, written: Tensor, vocab_size: int) -> Tensor:
        """Shallow fusion: the language model's weighted next-token log-probs over our vocabulary."""
        lm_out = self.lm_model(written)
        lm_lprobs = self.lm_model.get_normalized_probs(lm_out, log_probs=True, sample=None)[:, -1, :] * self.lm_weight
        if lm_lprobs.size(1) > vocab_size:
            raise ValueError(f"the language model's vocabulary ({lm_lprobs.size(1)}) exceeds ours ({vocab_size})")
        # a text-only LM has no opinion on the image-code and bin tokens after its vocabulary
        return F.pad(lm_lprobs, (0, vocab_size - lm_lprobs.size(1)))

    def _apply_token_rules(self, step: int, lprobs: Tensor, max_len: int) -> None:
        """Never pad, unk penalty, code/box-only outputs, and only eos after max_len tokens."""
        torch.nan_to_num_(lprobs, nan=-math.inf, posinf=math.inf, neginf=-math.inf)  # NaN -> -inf in one pass
        lprobs[:, self.pad] = -math.inf
        lprobs[:, self.unk] -= self.unk_penalty
        if (self.gen_code or self.gen_box) and step < max_len:
            lprobs[:, :self.vocab.specials.stop] = -math.inf
        if self.gen_box:
            lprobs[:, -1] = -math.inf
            if (step + 1) % BOX_TOKENS_PER_OBJECT == 0:
                lprobs[:, self.constraint_start: self.vocab.bins.stop] = -math.inf
            else:
                lprobs[:, self.vocab.bins.stop:] = -math.inf
        if self.bins_only:
            eos_lprobs = lprobs[:, self.eos].clone()
            lprobs[:, :self.vocab.bins.start] = -math.inf
            lprobs[:, self.vocab.bins.stop:] = -math.inf
            lprobs[:, self.eos] = eos_lprobs
        if step >= max_len:
            lprobs[:, : self.eos] = -math.inf
            lprobs[:, self.eos + 1:] = -math.inf
            if self.ignore_eos:
                lprobs[:, self.eos] = 1

    def _force_prefix(self, step: int, lprobs: Tensor, scores: Tensor, tokens: Tensor, prefix_tokens: Tensor,
                      beam_size: int):
        """Leave only the prefix token (with its model log-prob) where the prefix has one at this step."""
        forced = prefix_tokens[:, step].repeat_interleave(beam_size)
        forced_lprobs = lprobs.gather(1, forced.unsqueeze(1)).squeeze(1)
        rows = forced.ne(self.pad).nonzero(as_tuple=True)[0]
        lprobs[rows] = -math.inf
        lprobs[rows, forced[rows]] = forced_lprobs[rows]
        # a prefix ending with eos finishes that sentence now: let all its beams be the (identical) first beam
        ends = forced.eq(self.eos).view(-1, beam_size)[:, 0]
        if ends.any():
            tokens, scores, lprobs = (self._copy_first_beam(t, ends, beam_size) for t in (tokens, scores, lprobs))
        return lprobs, tokens, scores

    @staticmethod
    def _copy_first_beam(tensor: Tensor, sentences: Tensor, beam_size: int) -> Tensor:
        tensor = tensor.view(-1, beam_size, tensor.size(-1))
        tensor[sentences] = tensor[sentences][:, :1, :]
        return tensor.view(-1, tensor.size(-1))

    def _finalize_hypos(
        self,
        step: int,
        bbsz_idx: Tensor,
        eos_scores: Tensor,
        tokens: Tensor,
        scores: Tensor,
        attn: Optional[Tensor],
        finalized: List[List[Dict[str, Tensor]]],
        sentence_of_row: List[int],
        beam_size: int,
        src_lengths: Tensor,
    ) -> List[int]:
        """Store the hypotheses ending with eos at ``step``; return the batch rows with beam_size of them."""
        hypo_tokens = tokens[bbsz_idx, 1: step + 2]  # without the leading bos
        hypo_tokens[:, step] = self.eos
        hypo_attn = attn[bbsz_idx, :, 1: step + 2] if attn is not None else None
        cumulative = scores[bbsz_idx, : step + 1]
        cumulative[:, step] = eos_scores
        positional = torch.cat([cumulative[:, :1], cumulative[:, 1:] - cumulative[:, :-1]], dim=1)
        if self.normalize_scores:
            eos_scores = eos_scores / (step + 1) ** self.len_penalty
        batch_rows = bbsz_idx // beam_size
        if self.match_source_len:
            too_long = step > src_lengths[batch_rows]
            eos_scores = eos_scores.masked_fill(too_long, -math.inf)

        batch_rows_list = batch_rows.tolist()
        for i, row in enumerate(batch_rows_list):
            hypos = finalized[sentence_of_row[row]]
            if len(hypos) < beam_size:
                hypos.append({
                    "tokens": hypo_tokens[i],
                    "score": eos_scores[i],
                    "attention": hypo_attn[i] if hypo_attn is not None else torch.empty(0),  # src_len x tgt_len
                    "alignment": torch.empty(0),
                    "positional_scores": positional[i],
                })
        return sorted(row for row in set(batch_rows_list) if len(finalized[sentence_of_row[row]]) == beam_size)
