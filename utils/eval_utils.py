"""Per-task evaluation steps for ``evaluate.py``, result merging across ranks, and the final metrics.

``eval_step(task, generator, models, sample)`` returns ``(results, scores)`` like the original: ``results``
are the per-sample dicts written to ``{gen_subset}_predict.json`` (same keys as the original) and ``scores``
the per-sample scores (VQA soft accuracy, acc@0.5, accuracy) or ``None`` when the metric needs the whole set.
"""
from __future__ import annotations

import logging
import math
import os
import string
from itertools import chain
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from utils import metrics

logger = logging.getLogger(__name__)

GLUE_TASKS = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2")
# GLUE tasks scored with F1 on their positive answer, as the original's task code does
GLUE_F1_POSITIVE = {"mrpc": "yes", "qqp": "yes"}

_CAPTION_PUNCTUATION = str.maketrans({key: None for key in string.punctuation})


def symbols_to_strip(generator) -> set[int]:
    """Token ids left out of decoded text (BOS/EOS unless the generator says otherwise)."""
    if hasattr(generator, "symbols_to_strip_from_output"):
        return generator.symbols_to_strip_from_output
    return {generator.bos, generator.eos}


def decode_tokens(tokens: torch.Tensor, task, generator) -> str:
    """Token ids -> detokenized text with the task's dictionary and BPE."""
    text = task.tgt_dict.string(tokens.int().cpu(), extra_symbols_to_ignore=symbols_to_strip(generator))
    return bpe_decode(task.bpe, text)


def bpe_decode(bpe, text: str) -> str:
    """BPE-decode ``text`` (the task's BPE keeps ``<code_i>``/``<bin_i>`` symbols verbatim)."""
    return text if bpe is None else bpe.decode(text)


def sample_ids(sample: dict) -> list:
    """The batch's sample ids as Python values (collaters give a numpy array or a tensor)."""
    ids = sample["id"]
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def question_id(sample_id) -> int | str:
    """A VQA question id as the original writes it (an int); ids that are not numbers stay strings."""
    text = str(sample_id)
    return int(text) if text.lstrip("-").isdigit() else text


def eval_caption(task, generator, models, sample, **kwargs):
    """Beam-search captions, detokenized and stripped of punctuation as the original does."""
    hypos = task.inference_step(generator, models, sample)
    results = []
    for i, sample_id in enumerate(sample_ids(sample)):
        caption = decode_tokens(_best_tokens(hypos, i), task, generator)
        results.append({"image_id": str(sample_id), "caption": caption.translate(_CAPTION_PUNCTUATION).strip()})
    return results, None


def caption_references(task, sample) -> list[list[str]]:
    """Reference captions of each sample, decoded from its ``&&``-joined target."""
    pad = task.tgt_dict.pad()
    references = []
    for target in sample["target"]:
        text = task.tgt_dict.string(target[target.ne(pad)].int().cpu(), extra_symbols_to_ignore={task.tgt_dict.eos()})
        text = bpe_decode(task.bpe, text)
        references.append([caption.strip() for caption in text.split("&&") if caption.strip()])
    return references


def eval_vqa_gen(task, generator, models, sample, beam_search_vqa_eval: bool | None = None, **kwargs):
    """VQA: beam search after the question prefix, or score every candidate answer (``allcand``)."""
    if beam_search_vqa_eval is None:
        beam_search_vqa_eval = task.cfg.val_inference_type == "beamsearch"
    ids = sample_ids(sample)
    if beam_search_vqa_eval:
        prefix_tokens = sample["prefix_tokens"]
        hypos = task.inference_step(generator, models, sample, prefix_tokens=prefix_tokens)
        answers = []
        for i in range(len(ids)):
            prefix_len = prefix_tokens[i].ne(task.tgt_dict.pad()).sum().item()
            answers.append(decode_tokens(_best_tokens(hypos, i)[prefix_len:], task, generator).strip())
    else:
        answers = _best_candidate_answers(task, models[0], sample)
    results = [{"question_id": question_id(sample_id), "answer": answer} for sample_id, answer in zip(ids, answers)]
    return results, _soft_scores(sample, answers)


def eval_vqa_zero_shot(task, generator, models, sample, **kwargs):
    """Zero-shot VQA (``--zero-shot``): unconstrained beam search without the question prefix."""
    hypos = task.inference_step(generator, models, sample)
    answers = [decode_tokens(_best_tokens(hypos, i), task, generator).strip() for i in range(len(hypos))]
    results = [{"question_id": question_id(sample_id), "answer": answer}
               for sample_id, answer in zip(sample_ids(sample), answers)]
    return results, _soft_scores(sample, answers)


def eval_snli_ve(task, generator, models, sample, **kwargs):
    """SNLI-VE: score "yes"/"no"/"maybe" after the decoder prompt, keep the best."""
    answers = _best_candidate_answers(task, models[0], sample)
    results = [{"uniq_id": sample_id, "answer": answer} for sample_id, answer in zip(sample_ids(sample), answers)]
    return results, _soft_scores(sample, answers)


def eval_image_classify(task, generator, models, sample, **kwargs):
    """ImageNet: score every class name (in the task's candidate batches), keep the best (top-1)."""
    model = models[0]
    encoder_out = _encode(model, sample)
    batch_size = sample["net_input"]["src_tokens"].size(0)
    device = sample["net_input"]["src_tokens"].device
    candidate_scores = []
    for target, prev_output, constraint_masks in zip(
        task.valid_tgt_list, task.valid_prev_output_list, task.valid_constraint_masks_list
    ):
        candidate_scores.append(
            score_candidates(
                model,
                encoder_out,
                prev_output.repeat(batch_size, 1).to(device),
                target.repeat(batch_size, 1).to(device),
                constraint_masks.repeat(batch_size, 1, 1).to(device),
                num_candidates=target.size(0),
                pad=task.tgt_dict.pad(),
            )
        )
    answers = [task.index2ans[i] for i in torch.cat(candidate_scores, dim=-1).argmax(1).tolist()]
    results = [{"uniq_id": sample_id, "answer": answer} for sample_id, answer in zip(sample_ids(sample), answers)]
    return results, _soft_scores(sample, answers)


def eval_refcoco(task, generator, models, sample, **kwargs):
    """RefCOCO/+/g: generate 4 ``<bin>`` tokens, map them to a box in original pixels, score IoU >= 0.5."""
    hypos = task.inference_step(generator, models, sample)
    first_bin = len(task.src_dict) - task.cfg.num_bins
    bins = []
    for i in range(len(hypos)):
        tokens = _best_tokens(hypos, i)[:-1]  # drop EOS
        if tokens.numel() != 4:
            raise ValueError(
                f"refcoco: sample {i} generated {tokens.numel()} coordinate tokens instead of 4; "
                "evaluate with --min-len 4 --max-len-a 0 --max-len-b 4"
            )
        bins.append(tokens - first_bin)
    boxes = metrics.bins_to_boxes(
        torch.stack(bins),
        task.cfg.num_bins,
        task.cfg.max_image_size,
        sample["w_resize_ratios"],
        sample["h_resize_ratios"],
    )
    results = [
        {"uniq_id": sample_id, "box": boxes[i].tolist()} for i, sample_id in enumerate(sample_ids(sample))
    ]
    return results, metrics.grounding_hits(boxes, sample["region_coords"]).tolist()


def eval_glue(task, generator, models, sample, **kwargs):
    """GLUE: the constrained next-token prediction after the decoder prompt is the answer word."""
    logits, _ = models[0](**sample["net_input"])
    logits = logits.masked_fill(~sample["constraint_masks"], -math.inf)
    last_positions = sample["net_input"]["prev_output_tokens"].ne(task.src_dict.pad()).sum(1) - 1
    predictions = logits[torch.arange(logits.size(0), device=logits.device), last_positions].argmax(-1).tolist()
    hyps = [task.bpe.decode(task.src_dict[token]).strip() for token in predictions]
    refs = [next(iter(ref_dict)) for ref_dict in sample["ref_dict"]]
    results = [{"hyp": hyp, "ref": ref} for hyp, ref in zip(hyps, refs)]
    return results, [float(hyp == ref) for hyp, ref in zip(hyps, refs)]


def eval_gigaword(task, generator, models, sample, **kwargs):
    """Gigaword: beam-search summaries, re-tokenized like the references (digits masked as ``#``)."""
    hypos = task.inference_step(generator, models, sample)
    results = []
    for i in range(len(hypos)):
        hyp = decode_tokens(_best_tokens(hypos, i), task, generator).lower().strip()
        results.append({"hyp": metrics.fix_tokenization(hyp).replace("1", "#"), "ref": sample["target_strs"][i]})
    return results, None


def eval_image_gen(task, generator, models, sample, **kwargs):
    """Text-to-image: ``sampling_times`` rounds of sampled codes per caption, decoded by the VQGAN and ranked by
    CLIP similarity to the caption; the score is the best similarity. ``gen_images_path`` keeps the images
    (``all_results/`` ranked, ``top1/`` the best, as the original)."""
    from utils.image_gen_utils import TextToImageTools, caption_of_source, save_images

    tools = TextToImageTools.of_task(task).to(sample["net_input"]["src_tokens"].device)
    rounds = [task.inference_step(generator, models, sample) for _ in range(task.cfg.sampling_times)]
    results, scores = [], []
    for i, sample_id in enumerate(sample_ids(sample)):
        images = tools.images_of_hypotheses([hypo["tokens"] for hypos in rounds for hypo in hypos[i]])
        caption = caption_of_source(task, sample["net_input"]["src_tokens"][i])
        ranked, similarities = tools.rerank(images, caption)
        if task.cfg.gen_images_path:
            save_images(ranked, caption, os.path.join(task.cfg.gen_images_path, "all_results"))
            save_images(ranked[:1], caption, os.path.join(task.cfg.gen_images_path, "top1"))
        scores.append(similarities.max().item())
        results.append({"sample_id": str(sample_id), "score": scores[-1]})
    return results, scores


def eval_by_task(task, generator, models, sample, **kwargs):
    """Tasks that carry their own ``eval_step`` (the ``ocr`` task)."""
    return task.eval_step(generator, models, sample, **kwargs)


EVAL_STEPS: dict[str, Callable] = {
    "caption": eval_caption,
    "vqa_gen": eval_vqa_gen,
    "refcoco": eval_refcoco,
    "snli_ve": eval_snli_ve,
    "image_classify": eval_image_classify,
    "gigaword": eval_gigaword,
    "image_gen": eval_image_gen,
    "ocr": eval_by_task,
    **{name: eval_glue for name in GLUE_TASKS},
}
# the tasks the original evaluates zero-shot; their generator drops the answer trie and applies its vocabulary
# constraints (--constraint-range) to the log-probs instead of the logits
ZERO_SHOT_STEPS: dict[str, Callable] = {"vqa_gen": eval_vqa_zero_shot, "refcoco": eval_refcoco, "snli_ve": eval_snli_ve}


def eval_step(task, generator, models, sample, zero_shot: bool = False, **kwargs):
    """Evaluate one batch with the step registered for ``task.cfg._name``: ``(results, scores or None)``."""
    name = task.cfg._name
    step = EVAL_STEPS.get(name)
    if zero_shot and name in ZERO_SHOT_STEPS:
        generator.zero_shot = True
        generator.constraint_trie = None
        step = ZERO_SHOT_STEPS[name]
    if step is None:
        raise ValueError(f"evaluate.py does not support task '{name}' (supported: {', '.join(sorted(EVAL_STEPS))})")
    return step(task, generator, models, sample, **kwargs)


def sample_references(task, sample) -> list | None:
    """Per-sample references the final metric needs beyond ``results`` (only captions), else ``None``."""
    return caption_references(task, sample) if task.cfg._name == "caption" else None


def score_candidates(
    model,
    encoder_out: dict,
    prev_output_tokens: torch.Tensor,
    target: torch.Tensor,
    constraint_masks: torch.Tensor,
    num_candidates: int,
    pad: int,
) -> torch.Tensor:
    """Teacher-forced log-likelihood of ``num_candidates`` answers per sample: (B * K, T) inputs -> (B, K).

    Rows are ordered sample-major (all candidates of sample 0 first). Positions whose constraint mask allows
    nothing (the decoder prompt) and padding do not count.
    """
    batch_size = prev_output_tokens.size(0) // num_candidates
    new_order = torch.arange(batch_size, device=prev_output_tokens.device).repeat_interleave(num_candidates)
    expanded = model.encoder.reorder_encoder_out(encoder_out, new_order)
    logits, extra = model.decoder(prev_output_tokens, encoder_out=expanded)
    logits = logits.masked_fill(~constraint_masks, -math.inf)
    lprobs = model.get_normalized_probs((logits, extra), log_probs=True)
    scores = lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)
    scores = scores.masked_fill(target.eq(pad) | (~constraint_masks).all(2), 0)
    return scores.sum(1).view(batch_size, num_candidates)


def _best_candidate_answers(task, model, sample) -> list[str]:
    """Score the task's candidate answers after each sample's decoder prompt; return the best per sample."""
    encoder_out = _encode(model, sample)
    device = sample["net_input"]["src_tokens"].device
    pad, eos = task.tgt_dict.pad(), task.tgt_dict.eos()
    prompts = [torch.as_tensor(prompt, dtype=torch.long) for prompt in sample["decoder_prompts"]]
    candidate_scores = []
    for answers, answer_masks in zip(task.valid_answers_list, task.valid_constraint_masks_list):
        targets, prev_outputs, masks = [], [], []
        for prompt in prompts:
            prompt_mask = torch.zeros(len(prompt) - 1, len(task.tgt_dict), dtype=torch.bool)
            for answer, answer_mask in zip(answers, answer_masks):
                targets.append(torch.cat([prompt[1:], answer, answer.new_tensor([eos])]))
                prev_outputs.append(torch.cat([prompt, answer]))
                masks.append(torch.cat([prompt_mask, answer_mask], dim=0))
        candidate_scores.append(
            score_candidates(
                model,
                encoder_out,
                _right_pad(prev_outputs, pad).to(device),
                _right_pad(targets, pad).to(device),
                _right_pad(masks, True).to(device),
                num_candidates=len(answers),
                pad=pad,
            )
        )
    best = torch.cat(candidate_scores, dim=-1).argmax(1).tolist()
    return [task.index2ans[i] for i in best]


def _best_tokens(hypos: list, i: int) -> torch.Tensor:
    if not hypos[i]:
        raise ValueError(f"the generator finished no hypothesis for sample {i} of a batch; raise --max-len-b")
    return hypos[i][0]["tokens"]


def _right_pad(items: Sequence[torch.Tensor], value) -> torch.Tensor:
    # padded mask rows are all True, as the original's collate_tokens(pad_idx=1) leaves them; their target is pad
    return torch.nn.utils.rnn.pad_sequence(list(items), batch_first=True, padding_value=value)


def _encode(model, sample) -> dict:
    net_input = sample["net_input"]
    return model.encoder(
        net_input["src_tokens"],
        src_lengths=net_input["src_lengths"],
        patch_images=net_input.get("patch_images"),
        patch_masks=net_input.get("patch_masks"),
    )


def _soft_scores(sample, answers: Sequence[str]) -> list[float]:
    return [metrics.vqa_soft_accuracy(answer, ref_dict) for answer, ref_dict in zip(answers, sample["ref_dict"])]


def gather_records(records: list[dict], world_size: int) -> list[dict]:
    """All ranks' per-sample records on every rank, rank 0's first.

    Each rank reads its own contiguous slice of the TSV and shorter slices are padded with empty batches
    (skipped), so concatenating counts every row once and keeps file order. Ids cannot be used to drop
    repeats: some tasks number samples within their rank's slice, as the original does.
    """
    if world_size == 1:
        return records
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, records)
    return list(chain.from_iterable(gathered))


def compute_metrics(task_name: str, records: list[dict]) -> dict[str, float]:
    """The task's final metrics from merged records (``result``, ``score``, ``references`` per sample)."""
    results = [record["result"] for record in records]
    scores = [record["score"] for record in records if record["score"] is not None]
    if not records:
        return {}
    if task_name == "caption":
        if not all(record["references"] for record in records):
            logger.warning("caption metrics skipped: some samples have no reference captions")
            return {}
        if not metrics.java_available():
            logger.warning("caption metrics skipped: pycocoevalcap needs java on PATH")
            return {}
        predictions = {r["result"]["image_id"]: r["result"]["caption"] for r in records}
        references = {r["result"]["image_id"]: r["references"] for r in records}
        return metrics.coco_caption_scores(predictions, references)
    if task_name == "gigaword":
        return metrics.rouge_scores([r["hyp"] for r in results], [r["ref"] for r in results])
    if task_name in GLUE_TASKS:
        return metrics.classification_scores(
            [r["hyp"] for r in results],
            [r["ref"] for r in results],
            positive_label=GLUE_F1_POSITIVE.get(task_name),
            mcc=task_name == "cola",
        )
    name = {"vqa_gen": "vqa_score", "refcoco": "acc@0.5", "image_gen": "clip_score"}.get(task_name, "accuracy")
    return {name: metrics.mean(scores)} if scores else {}
