"""Task metrics: COCO caption scores, VQA soft accuracy, grounding acc@IoU, classification and ROUGE.

Each function is pure (inputs in, numbers out) so evaluation, validation and tests share one definition.
Caption scores use pycocoevalcap (Java for the PTB tokenizer and METEOR), Gigaword ROUGE uses Google's
``rouge_score`` with the Porter stemmer, as the original's ``eval_rouge.py`` does through ``datasets``.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import string
import tempfile
from typing import Hashable, Iterable, Mapping, Sequence

import torch

logger = logging.getLogger(__name__)

CAPTION_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def java_available() -> bool:
    """True when a ``java`` executable is on PATH (pycocoevalcap's PTB tokenizer and METEOR need it)."""
    return shutil.which("java") is not None


def ptb_tokenize(captions: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, list[str]]:
    """Lower-case and PTB-tokenize captions, dropping punctuation, as COCO caption evaluation does."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    as_coco = {key: [{"caption": text} for text in texts] for key, texts in captions.items()}
    return PTBTokenizer().tokenize(as_coco)


def coco_caption_scores(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of one caption per image against its references.

    Both inputs are keyed by image id and are PTB-tokenized first, like ``pycocoevalcap.eval.COCOEvalCap``.
    SPICE is not computed: its jar downloads Stanford models at run time.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    missing = [key for key in predictions if not references.get(key)]
    if missing:
        raise ValueError(f"no reference captions for image id(s) {missing[:5]}")
    if not predictions:
        raise ValueError("no predictions to score")
    if not java_available():
        raise RuntimeError("caption metrics need Java on PATH (pycocoevalcap's PTB tokenizer and METEOR)")
    keys = list(predictions)
    # one tokenizer run (one JVM start) for references and predictions together
    tokenized = ptb_tokenize({
        **{("ref", key): list(references[key]) for key in keys},
        **{("res", key): [predictions[key]] for key in keys},
    })
    gts = {key: tokenized[("ref", key)] for key in keys}
    res = {key: tokenized[("res", key)] for key in keys}
    logger.info("SPICE skipped: it downloads Stanford CoreNLP models at run time")

    scores: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its n-gram counts
        bleu, _ = Bleu(4).compute_score(gts, res)
    scores.update({f"Bleu_{n + 1}": float(value) for n, value in enumerate(bleu)})
    scores["METEOR"] = _meteor_score(gts, res)
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


def coco_caption_file_scores(result_file: str, annotation_file: str) -> dict[str, float]:
    """Score a ``[{"image_id", "caption"}]`` result file against COCO-format reference annotations.

    Only the images in the result file are scored (as the original's ``coco_eval.py`` sets ``params['image_id']``);
    image ids are compared as strings since result files store them as strings.
    """
    with open(result_file) as f:
        predictions = {str(r["image_id"]): r["caption"] for r in json.load(f)}
    with open(annotation_file) as f:
        annotations = json.load(f)
    if "annotations" not in annotations:
        raise ValueError(f"{annotation_file}: not a COCO caption annotation file (no 'annotations' list)")
    references: dict[str, list[str]] = {}
    for annotation in annotations["annotations"]:
        references.setdefault(str(annotation["image_id"]), []).append(annotation["caption"])
    missing = [key for key in predictions if key not in references]
    if missing:
        raise ValueError(f"{annotation_file}: no reference captions for image id(s) {missing[:5]} of {result_file}")
    return coco_caption_scores(predictions, references)


def _meteor_score(gts: dict, res: dict) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()  # starts a JVM, which Meteor.__del__ stops when this function returns
    return float(meteor.compute_score(gts, res)[0])


def write_coco_caption_results(predictions: Mapping[Hashable, str], path: str) -> None:
    """Write ``[{"image_id", "caption"}]``, the result format of COCO caption evaluation."""
    write_json(path, [{"image_id": image_id, "caption": caption} for image_id, caption in predictions.items()])


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON through a temporary file, so readers never see a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(obj, f)
        os.chmod(tmp_path, 0o644)  # mkstemp creates owner-only files; results are meant to be shared
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def vqa_soft_accuracy(answer: str, answer_confidences: Mapping[str, float]) -> float:
    """Score of an answer: its confidence among the reference answers, 0 when absent (the original's VQA score)."""
    return float(answer_confidences.get(answer, 0.0))


def bins_to_boxes(
    bin_indices: torch.Tensor,
    num_bins: int,
    max_image_size: int,
    w_resize_ratios: torch.Tensor,
    h_resize_ratios: torch.Tensor,
) -> torch.Tensor:
    """Map (B, 4) ``<bin_i>`` indices ``x0, y0, x1, y1`` to boxes in original image pixels."""
    boxes = bin_indices.float() / (num_bins - 1) * max_image_size
    scale = torch.stack([w_resize_ratios, h_resize_ratios, w_resize_ratios, h_resize_ratios], dim=1)
    return boxes / scale.to(boxes)


def box_iou(boxes: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise IoU of two (B, 4) ``x0, y0, x1, y1`` box sets, and whether each pair overlaps at all."""
    top_left = torch.maximum(boxes[:, :2], targets[:, :2])
    bottom_right = torch.minimum(boxes[:, 2:], targets[:, 2:])
    inter_wh = bottom_right - top_left
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    area_boxes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_targets = (targets[:, 2] - targets[:, 0]) * (targets[:, 3] - targets[:, 1])
    # the 1e-6 keeps degenerate boxes finite; it is part of the original's RefCOCO numbers
    iou = inter / (area_boxes + area_targets - inter + 1e-6)
    return iou, (inter_wh > 0).all(dim=1)


def grounding_hits(boxes: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-box 1.0 when IoU >= ``threshold`` with its target (and they overlap), else 0.0 (RefCOCO acc@0.5)."""
    iou, overlaps = box_iou(boxes.float(), targets.float())
    return ((iou >= threshold) & overlaps).float()


def accuracy(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of predictions equal to their label (SNLI-VE, GLUE, ImageNet top-1)."""
    _check_same_length(predictions, labels)
    return sum(p == t for p, t in zip(predictions, labels)) / len(labels)


def classification_scores(
    predictions: Sequence[str], labels: Sequence[str], positive_label: str | None = None, mcc: bool = False
) -> dict[str, float]:
    """Accuracy, plus binary F1 for ``positive_label`` (MRPC, QQP) and Matthews correlation (CoLA)."""
    from sklearn.metrics import f1_score, matthews_corrcoef

    scores = {"accuracy": accuracy(predictions, labels)}
    if positive_label is not None:
        scores["f1"] = float(f1_score(list(labels), list(predictions), pos_label=positive_label, average="binary"))
    if mcc:
        scores["mcc"] = float(matthews_corrcoef(list(labels), list(predictions)))
    return scores


def rouge_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure with stemming, as Gigaword is scored (``rouge_score``, ``use_stemmer=True``).

    The original prints the bootstrap aggregate's ``mid`` value, an estimate of this mean.
    """
    from rouge_score import rouge_scorer

    _check_same_length(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hypothesis, reference in zip(hypotheses, references):
        # rouge_score takes (target, prediction)
        for rouge_type, score in scorer.score(reference, hypothesis).items():
            totals[rouge_type] += score.fmeasure
    return {rouge_type: total / len(hypotheses) for rouge_type, total in totals.items()}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one character each)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def ocr_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """OFA-OCR's metrics: ``acc`` (exact matches) and ``ned`` (1 - mean edit distance / longer length)."""
    _check_same_length(hypotheses, references)
    distances = [edit_distance(h, r) / max(len(h), len(r), 1) for h, r in zip(hypotheses, references)]
    return {"acc": accuracy(hypotheses, references), "ned": 1.0 - mean(distances)}


def mean(values: Iterable[float]) -> float:
    """Average of per-sample scores (VQA score, acc@0.5, accuracy)."""
    values = list(values)
    if not values:
        raise ValueError("no scores to average")
    return float(sum(values)) / len(values)


def _check_same_length(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not references:
        raise ValueError("no predictions to score")


# Gigaword references are PTB-tokenized; generated summaries are re-tokenized the same way before ROUGE.
_PTB_ESCAPES = {
    "(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-",
    "[UNK]": "UNK", "&": "&amp;", "<": "&lt;", ">": "&gt;",
}


def _is_number_with_commas(token: str) -> bool:
    return all(ch.isdigit() or ch == "," for ch in token)


def fix_tokenization(text: str) -> str:
    """Re-tokenize a detokenized Gigaword summary like its PTB-style references (the original's rules).

    Brackets and ``& < >`` are escaped, double quotes become ``` `` ``` / ``''`` and single quotes `` ` `` / ``'``
    in turn, clitics (``n't 's 'd 'll``), ``...``, numbers (``3 , 000``, ``3 . 03``), acronyms (``U . N .``)
    and hyphenated words are joined.
    """
    tokens = text.split()
    out: list[str] = []
    in_double_quote = in_single_quote = False
    after_joining_dash = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        joining_dash = False
        step = 1
        if tok in _PTB_ESCAPES:
            out.append(_PTB_ESCAPES[tok])
        elif tok == '"':
            out.append("''" if in_double_quote else "``")
            in_double_quote = not in_double_quote
        elif tok == "'" and out and out[-1].endswith("n") and nxt == "t":
            out[-1] = out[-1][:-1]
            out.append("n't")
            step = 2
        elif tok == "'" and nxt in ("s", "d", "ll"):
            out.append("'" + nxt)
            step = 2
        elif tok == "'":
            out.append("'" if in_single_quote else "`")
            in_single_quote = not in_single_quote
        elif tok == "." and tokens[i + 1:i + 3] == [".", "."]:
            out.append("...")
            step = 3
        elif (tok == "," and out and _is_number_with_commas(out[-1]) and nxt is not None
              and _is_number_with_commas(nxt)):
            out[-1] += "," + nxt
            step = 2
        elif tok == "." and out and out[-1].isdigit() and nxt is not None and nxt.isdigit():
            out[-1] += "." + nxt
            step = 2
        elif (tok == "." and out and len(out[-1]) == 1 and out[-1].isupper() and i + 2 < len(tokens)
              and len(nxt) == 1 and nxt.isupper() and tokens[i + 2] == "."):
            # "U . N . x" -> "U.N." (+ further "X ." pairs); the scan resumes two tokens on, as the original's
            # does, so the acronym's last "." is also kept as a token of its own
            end = i + 3
            while end + 2 < len(tokens) and len(tokens[end + 1]) == 1 and tokens[end + 1].isupper() \
                    and tokens[end + 2] == ".":
                end += 2
            out[-1] += "".join(tokens[i:end])
            step = 2
        elif tok == "-":
            if nxt == "-":
                out.append("--")
                step = 2
            elif nxt is None or i == 0:
                out.append("-")
            elif out[-1] not in string.punctuation and nxt[0] not in string.punctuation:
                out[-1] += "-"
                joining_dash = True
            else:
                out.append("-")
        elif after_joining_dash and out and tok[0] not in string.punctuation:
            out[-1] += tok
        else:
            out.append(tok)
        after_joining_dash = joining_dash
        i += step
    return " ".join(out)
