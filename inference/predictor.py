"""Predictions on image files and text, with no TSV: the Python API under ``predict.py``.

A checkpoint is loaded as evaluate.py loads it; each image (+ text) becomes a sample through the task's own
dataset code (:meth:`data.ofa_dataset.OFADataset.sample_from_fields`), batches go through the same generator
and the same per-task evaluation step, so the outputs equal evaluate.py's on the same rows.
"""
from __future__ import annotations

import base64
import logging
import os
import tempfile
from itertools import chain
from argparse import Namespace
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from omegaconf import OmegaConf, open_dict

from data.bert_bpe import BERT_CN_DIR
from data.dictionary import BPE_DIR
from data.file_dataset import RowError
from tasks.loading import load_model_ensemble_and_task, register_ofa_components
from utils import checkpoint_utils

logger = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, bytes, "PIL.Image.Image"]  # noqa: F821

#: the generation flags of each task's run_scripts/<task>/evaluate_*.sh (fairseq's defaults elsewhere)
GENERATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "caption": {"beam": 5, "max_len_b": 16, "no_repeat_ngram_size": 3},
    "refcoco": {"beam": 5, "min_len": 4, "max_len_a": 0, "max_len_b": 4, "no_repeat_ngram_size": 3},
    "vqa_gen": {"beam": 5, "unnormalized": True, "temperature": 1.0},
    "snli_ve": {},
    "image_classify": {},
    "ocr": {"beam": 5, "max_len_b": 64, "no_repeat_ngram_size": 0},
}
FAIRSEQ_GENERATION_DEFAULTS: dict[str, Any] = {
    "beam": 5, "max_len_a": 0, "max_len_b": 200, "min_len": 1, "no_repeat_ngram_size": 0, "lenpen": 1.0,
    "unnormalized": False, "temperature": 1.0,
}
SNLI_VE_LABELS = {"yes": "entailment", "no": "contradiction", "maybe": "neutral"}


class PredictionError(ValueError):
    """A problem with the user's inputs (checkpoint, task, image, text), reported in one line."""


@dataclass
class Request:
    """One prediction: an image and the text the task needs (question, expression, hypothesis, premise)."""
    image: ImageInput
    text: str | None = None
    premise: str | None = None
    instruction: str | None = None  #: a free prompt in place of the caption task's (zero-shot use)

    @property
    def name(self) -> str:
        return str(self.image) if isinstance(self.image, (str, os.PathLike)) else f"<{type(self.image).__name__}>"


def image_base64(image: ImageInput) -> str:
    """An image file's bytes (or an in-memory image, saved as PNG) as the base64 a TSV column holds."""
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise PredictionError(f"{image}: image file not found")
        raw = Path(image).read_bytes()
    elif isinstance(image, bytes):
        raw = image
    else:  # a PIL image
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        raw = buffer.getvalue()
    return base64.b64encode(raw).decode("ascii")


# ---- per task: the selected columns of a row built from a request, and the output read from a result ----------

def _need_text(request: Request, task_name: str, what: str) -> str:
    if not request.text:
        raise PredictionError(f"{request.name}: task {task_name} needs {what}")
    return request.text


def _first_candidate(task) -> str:
    # the dataset builds a training target from the label column; any answer of the closed set serves
    return task.index2ans[0] if getattr(task, "index2ans", None) else "yes"


def _caption_fields(task, uid, image, request):
    return [uid, image, ""]


def _vqa_fields(task, uid, image, request):
    question = _need_text(request, "vqa_gen", "a question (--question)")
    return [uid, image, question, f"1.0|!+{_first_candidate(task)}", ""]


def _refcoco_fields(task, uid, image, request):
    # the box column is the target of training; prediction ignores it, so any box inside the image serves
    return [uid, image, _need_text(request, "refcoco", "a referring expression (--text)"), "0,0,1,1"]


def _snli_ve_fields(task, uid, image, request):
    return [uid, image, _need_text(request, "snli_ve", "a hypothesis (--text)"), request.premise or "", "entailment"]


def _image_classify_fields(task, uid, image, request):
    return [image, _first_candidate(task)]


def _ocr_fields(task, uid, image, request):
    return [uid, image, ""]


TEXTLESS_TASKS = ("caption", "image_classify", "ocr")
ROW_BUILDERS: dict[str, Callable] = {
    "caption": _caption_fields,
    "vqa_gen": _vqa_fields,
    "refcoco": _refcoco_fields,
    "snli_ve": _snli_ve_fields,
    "image_classify": _image_classify_fields,
    "ocr": _ocr_fields,
}


def output_of(task_name: str, result: dict) -> dict:
    """The JSON-line fields of one evaluation result: caption, answer, box (input-image pixels) or label."""
    if task_name == "caption":
        return {"caption": result["caption"]}
    if task_name == "refcoco":
        return {"box": [round(float(v), 2) for v in result["box"]]}
    if task_name == "snli_ve":
        return {"answer": result["answer"], "label": SNLI_VE_LABELS.get(result["answer"], result["answer"])}
    if task_name == "image_classify":
        return {"label": result["answer"]}
    if task_name == "ocr":
        return {"text": result["hyp"]}
    return {"answer": result["answer"]}


# ---- loading ---------------------------------------------------------------------------------------------------

def load_models_and_task(path: str, task_name: str | None, overrides: dict, zero_shot: bool):
    """Models and task from a checkpoint file, or from a converted Hugging Face / ModelScope folder."""
    from fairseq import tasks

    register_ofa_components()
    if os.path.isdir(path):
        from scripts.convert_checkpoint import hf_dir_to_fairseq_file

        with tempfile.TemporaryDirectory() as folder:
            converted = os.path.join(folder, "checkpoint.pt")
            hf_dir_to_fairseq_file(path, converted)
            state = checkpoint_utils.load_checkpoint_to_cpu(converted, overrides)
    elif os.path.isfile(path):
        state = checkpoint_utils.load_checkpoint_to_cpu(path, overrides)
    else:
        raise PredictionError(f"checkpoint not found: {path}")
    saved_cfg = checkpoint_utils.checkpoint_cfg(state, path)
    saved_task = saved_cfg.task._name if saved_cfg.get("task") else None
    if "bpe_dir" not in overrides:  # the saved path may be another machine's: use the repository's vocabulary
        bert = saved_task is not None and saved_cfg.task.get("bpe") == "bert"
        overrides["bpe_dir"] = BERT_CN_DIR if bert else BPE_DIR
        checkpoint_utils.apply_arg_overrides(state, {"bpe_dir": overrides["bpe_dir"]})
    task_name = task_name or saved_task
    if task_name is None:
        raise PredictionError(f"{path} holds no task configuration (e.g. a converted checkpoint): "
                              "name the task, e.g. --task caption")
    if saved_task is None or task_name != saved_task:
        if not zero_shot:
            held = f"a '{saved_task}' checkpoint" if saved_task else "a checkpoint without a task configuration"
            raise PredictionError(f"{path} is {held}: use --zero-shot to run it as '{task_name}'")
    if task_name not in ROW_BUILDERS:
        raise PredictionError(f"predict.py does not support task '{task_name}' "
                              f"(supported: {', '.join(sorted(ROW_BUILDERS))})")
    task = tasks.setup_task(OmegaConf.create({"_name": task_name, **overrides})) if zero_shot else None
    models, _, task = load_model_ensemble_and_task([path], arg_overrides=overrides, task=task, state=state)
    task.zero_shot = zero_shot  # before the generator is built: it reads the task's zero-shot rules
    return models, task


class OFAPredictor:
    """Caption, answer, ground, entail or classify image files with one OFA checkpoint.

    >>> p = OFAPredictor.from_checkpoint("caption.pt")
    >>> p.caption("img.jpg")
    """

    def __init__(self, models: list, task, generation: Namespace, device: torch.device | str = "cpu",
                 zero_shot: bool = False, batch_size: int = 8):
        self.models, self.task = models, task
        self.task_name = task.cfg._name
        self.device = torch.device(device)
        self.zero_shot = zero_shot
        self.batch_size = batch_size
        self.generation = generation
        for model in models:
            model.eval()
            model.prepare_for_inference_(OmegaConf.create({"generation": {"beam": generation.beam}}))
            model.to(self.device)
        self.generator = task.build_generator(models, generation)
        self.dataset = task.dataset_cls("test", None, task.bpe, task.src_dict, task.tgt_dict,
                                        **task.dataset_kwargs("test"))
        self._warned_no_premise = False

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, task: str | None = None, model_overrides: dict | None = None,
                        zero_shot: bool = False, device: str | None = None, batch_size: int = 8,
                        all_candidates: bool = False, **generation: Any) -> "OFAPredictor":
        """Load ``path`` (a checkpoint file or a converted HF/ModelScope folder). ``task`` defaults to the
        checkpoint's; ``generation`` overrides the task's evaluate-script defaults (``beam=``, ``max_len_b=``...);
        VQA decodes by beam search over the answer set unless ``all_candidates`` (score every answer)."""
        overrides = dict(model_overrides or {})
        models, loaded_task = load_models_and_task(str(path), task, overrides, zero_shot)
        if loaded_task.cfg._name == "vqa_gen":
            set_vqa_inference(loaded_task, "allcand" if all_candidates else "beamsearch")
        unknown = set(generation) - set(FAIRSEQ_GENERATION_DEFAULTS)
        if unknown:
            raise PredictionError(f"unknown generation option(s): {', '.join(sorted(unknown))} "
                                  f"(known: {', '.join(sorted(FAIRSEQ_GENERATION_DEFAULTS))})")
        options = {**FAIRSEQ_GENERATION_DEFAULTS, **GENERATION_DEFAULTS.get(loaded_task.cfg._name, {}),
                   **{k: v for k, v in generation.items() if v is not None}}
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(models, loaded_task, Namespace(**options), device=device, zero_shot=zero_shot,
                   batch_size=batch_size)

    # ---- batches ------------------------------------------------------------------------------------------------

    def sample(self, requests: Sequence[Request], first_index: int = 0) -> dict:
        """Collate ``requests`` into a batch through the task's dataset code."""
        build = ROW_BUILDERS[self.task_name]
        samples = []
        for i, request in enumerate(requests):
            if request.text and self.task_name in TEXTLESS_TASKS or request.premise and self.task_name != "snli_ve":
                raise PredictionError(f"task {self.task_name} takes no {'text' if request.text else 'premise'} "
                                      f"(given for {request.name}); --instruction gives a free prompt")
            if self.task_name == "snli_ve" and not request.premise and self.task.cfg.get("add_caption") \
                    and not self._warned_no_premise:
                self._warned_no_premise = True  # once: a folder of images would repeat it per image
                logger.warning("this snli_ve model was trained with --add-caption (a premise before the hypothesis) "
                               "and no premise is given: the prompt lacks it (pass premise=... / --premise)")
            fields = build(self.task, str(first_index + i), image_base64(request.image), request)
            try:
                item = self.dataset.sample_from_fields(first_index + i, fields, request.name)
            except RowError as err:
                raise PredictionError(f"{request.name}: {err.reason}") from None
            if request.instruction:
                if self.task_name != "caption":
                    raise PredictionError("an instruction replaces the caption task's prompt: run it with task "
                                          "'caption' (zero_shot=True / --zero-shot for other checkpoints)")
                item["source"] = self.dataset.encode_text(" " + request.instruction.strip(), append_bos=True,
                                                          append_eos=True)
            samples.append(item)
        return self.dataset.collater(samples)

    def predict_batch(self, requests: Sequence[Request], first_index: int = 0) -> list[dict]:
        """One output dict per request (see :func:`output_of`)."""
        sample = self.sample(requests, first_index)
        if self.device.type != "cpu":
            from fairseq import utils as fairseq_utils
            sample = fairseq_utils.move_to_cuda(sample, self.device)
        with torch.no_grad():  # VQA decodes as task.cfg.val_inference_type says
            results, _ = self.task.eval_step(self.generator, self.models, sample)
        outputs = [output_of(self.task_name, result) for result in results]
        # a free instruction's output is text, not a caption
        return [{"text": out["caption"]} if request.instruction else out for request, out in zip(requests, outputs)]

    def predict(self, requests: Iterable[Request | dict], progress: Callable | None = None) -> Iterable[dict]:
        """Outputs of ``requests`` in order, ``batch_size`` at a time; ``progress(n)`` after each batch. A request
        may be a ``predict.py --requests`` record: ``{"image": ..., "question"|"text": ..., "premise": ...}``."""
        from inference.requests import request_from_record

        batch: list[Request] = []
        done = 0
        for request in chain(requests, [None]):  # None flushes the last batch
            if request is not None:
                batch.append(request if isinstance(request, Request) else request_from_record(request))
            if batch and (len(batch) == self.batch_size or request is None):
                outputs = self.predict_batch(batch, done)
                done += len(batch)
                if progress:
                    progress(len(batch))
                yield from outputs
                batch = []

    def generate(self, image: ImageInput, instruction: str) -> str:
        """The text generated for a free ``instruction`` about ``image`` (the caption task's generator)."""
        return self._one("caption", Request(image, instruction=instruction))["text"]

    def _one(self, task_name: str, request: Request) -> dict:
        if task_name != self.task_name:
            raise PredictionError(f"this predictor runs task '{self.task_name}', not '{task_name}'; "
                                  f"load a {task_name} checkpoint (or use zero_shot=True, task='{task_name}')")
        return self.predict_batch([request])[0]

    # ---- one image at a time ----------------------------------------------------------------------------------

    def caption(self, image: ImageInput) -> str:
        """The caption of ``image``."""
        return self._one("caption", Request(image))["caption"]

    def answer(self, image: ImageInput, question: str) -> str:
        """The answer to ``question`` about ``image``."""
        return self._one("vqa_gen", Request(image, question))["answer"]

    def ground(self, image: ImageInput, text: str) -> list[float]:
        """The box ``[x0, y0, x1, y1]`` (pixels of ``image``) of the region ``text`` describes."""
        return self._one("refcoco", Request(image, text))["box"]

    def entail(self, image: ImageInput, hypothesis: str, premise: str | None = None) -> str:
        """``entailment``, ``contradiction`` or ``neutral`` for ``hypothesis`` given ``image`` (and ``premise``)."""
        return self._one("snli_ve", Request(image, hypothesis, premise))["label"]

    def classify(self, image: ImageInput) -> str:
        """The class label of ``image``."""
        return self._one("image_classify", Request(image))["label"]


def set_vqa_inference(task, inference_type: str) -> None:
    """Switch a VQA task between beam search over the answer trie and scoring every candidate (``allcand``)."""
    if inference_type == "allcand":
        if task.constraint_trie is None:
            raise PredictionError("this VQA model was trained without a closed answer set "
                                  "(--unconstrained-training): it cannot score all candidates")
    with open_dict(task.cfg):
        task.cfg.val_inference_type = inference_type
