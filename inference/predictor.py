"""Predictions on image files and text, with no TSV: the Python API under ``predict.py``.

A checkpoint is loaded as evaluate.py loads it; each image (+ text) becomes a sample through the task's own
dataset code (:meth:`data.ofa_dataset.OFADataset.sample_from_fields`), batches go through the same generator
and the same per-task evaluation step, so the outputs equal evaluate.py's on the same rows.
"""
from __future__ import annotations

import base64
import logging
import os
from itertools import chain
from argparse import Namespace
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from omegaconf import OmegaConf

from data.bert_bpe import BERT_CN_DIR
from data.dictionary import BPE_DIR
from data.file_dataset import RowError
from models.quantization import quantize_for_inference
from tasks.loading import TaskMismatchError, load_for_inference, prediction_tasks
from tasks.ofa_task import FAIRSEQ_GENERATION_DEFAULTS
from utils import checkpoint_utils

logger = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, bytes, "PIL.Image.Image"]  # noqa: F821


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


# ---- loading ---------------------------------------------------------------------------------------------------

def load_models_and_task(path: str, task_name: str | None, overrides: dict, zero_shot: bool):
    """Models and task from a checkpoint file, or from a converted Hugging Face / ModelScope folder."""
    if os.path.isdir(path):
        from tasks.hf_folder import hf_dir_to_checkpoint

        state = checkpoint_utils.upgrade_checkpoint(hf_dir_to_checkpoint(path), path, overrides)
    elif os.path.isfile(path):
        state = checkpoint_utils.load_checkpoint_to_cpu(path, overrides)
    else:
        raise PredictionError(f"checkpoint not found: {path}")
    saved_cfg = checkpoint_utils.checkpoint_cfg(state, path)
    if "bpe_dir" not in overrides:  # the saved path may be another machine's: use the repository's vocabulary
        bert = saved_cfg.get("task") is not None and saved_cfg.task.get("bpe") == "bert"
        overrides["bpe_dir"] = BERT_CN_DIR if bert else BPE_DIR
        checkpoint_utils.apply_arg_overrides(state, {"bpe_dir": overrides["bpe_dir"]})
    name = task_name or (saved_cfg.task._name if saved_cfg.get("task") else None)
    if name is not None and name not in prediction_tasks():
        raise PredictionError(f"predict.py does not support task '{name}' "
                              f"(supported: {', '.join(prediction_tasks())})")
    try:
        models, _, task = load_for_inference([path], task_name, overrides, zero_shot, state=state)
    except TaskMismatchError as err:
        raise PredictionError(str(err)) from None
    return models, task


class OFAPredictor:
    """Caption, answer, ground, entail or classify image files with one OFA checkpoint.

    >>> p = OFAPredictor.from_checkpoint("caption.pt")
    >>> p.caption("img.jpg")
    """

    def __init__(self, models: list, task, generation: Namespace, device: torch.device | str = "cpu",
                 zero_shot: bool = False, batch_size: int = 8, quantize: str = "none"):
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
            quantize_for_inference(model, quantize)
        self.generator = task.build_generator(models, generation)
        self.dataset = task.dataset_cls("test", None, task.bpe, task.src_dict, task.tgt_dict,
                                        **task.dataset_kwargs("test"))
        self._notices: set[str] = set()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, task: str | None = None, model_overrides: dict | None = None,
                        zero_shot: bool = False, device: str | None = None, batch_size: int = 8,
                        all_candidates: bool = False, quantize: str = "none", **generation: Any) -> "OFAPredictor":
        """Load ``path`` (a checkpoint file or a converted HF/ModelScope folder). ``task`` defaults to the
        checkpoint's; ``generation`` overrides the task's evaluate-script defaults (``beam=``, ``max_len_b=``...);
        VQA decodes by beam search over the answer set unless ``all_candidates`` (score every answer).
        ``quantize="int8"`` runs the Transformer layers' Linear modules in int8 (CPU; the default device then)."""
        overrides = dict(model_overrides or {})
        models, loaded_task = load_models_and_task(str(path), task, overrides, zero_shot)
        try:
            loaded_task.set_inference_type("allcand" if all_candidates else "beamsearch")
        except ValueError as err:
            raise PredictionError(str(err)) from None
        unknown = set(generation) - set(FAIRSEQ_GENERATION_DEFAULTS)
        if unknown:
            raise PredictionError(f"unknown generation option(s): {', '.join(sorted(unknown))} "
                                  f"(known: {', '.join(sorted(FAIRSEQ_GENERATION_DEFAULTS))})")
        options = {**FAIRSEQ_GENERATION_DEFAULTS, **loaded_task.generation_defaults,
                   **{k: v for k, v in generation.items() if v is not None}}
        device = device or ("cuda" if torch.cuda.is_available() and quantize in (None, "none") else "cpu")
        return cls(models, loaded_task, Namespace(**options), device=device, zero_shot=zero_shot,
                   batch_size=batch_size, quantize=quantize)

    # ---- batches ------------------------------------------------------------------------------------------------

    def sample(self, requests: Sequence[Request], first_index: int = 0) -> dict:
        """Collate ``requests`` into a batch through the task's dataset code."""
        task = self.task
        samples = []
        for i, request in enumerate(requests):
            if request.text and task.request_text is None or request.premise and not task.request_premise:
                raise PredictionError(f"task {self.task_name} takes no {'text' if request.text else 'premise'} "
                                      f"(given for {request.name}); --instruction gives a free prompt")
            notice = task.request_notice(request)
            if notice and notice not in self._notices:
                self._notices.add(notice)  # once: a folder of images would repeat it per image
                logger.warning(notice)
            if request.instruction and not task.request_instruction:
                raise PredictionError("an instruction replaces the caption task's prompt: run it with task "
                                      "'caption' (zero_shot=True / --zero-shot for other checkpoints)")
            try:
                fields = task.request_row(str(first_index + i), image_base64(request.image), request)
            except ValueError as err:
                raise PredictionError(f"{request.name}: {err}") from None
            try:
                item = self.dataset.sample_from_fields(first_index + i, fields, request.name)
            except RowError as err:
                raise PredictionError(f"{request.name}: {err.reason}") from None
            if request.instruction:
                item["source"] = self.dataset.encode_text(" " + request.instruction.strip(), append_bos=True,
                                                          append_eos=True)
            samples.append(item)
        return self.dataset.collater(samples)

    def predict_batch(self, requests: Sequence[Request], first_index: int = 0) -> list[dict]:
        """One output dict per request (the task's :meth:`~tasks.ofa_task.OFATask.prediction_output`)."""
        sample = self.sample(requests, first_index)
        if self.device.type != "cpu":
            from fairseq import utils as fairseq_utils
            sample = fairseq_utils.move_to_cuda(sample, self.device)
        with torch.no_grad():
            results, _ = self.task.eval_step(self.generator, self.models, sample)
        return [self.task.prediction_output(result, request) for result, request in zip(results, requests)]

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
