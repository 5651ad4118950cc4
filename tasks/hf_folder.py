"""Converted model folders: the task side of the Hugging Face / ModelScope layout and the file-level conversions.

A folder holds the port's weights and ``config.json`` (:mod:`models.ofa.hf_format`), the tokenizer files and, for
a task ModelScope has a pipeline for (its ``modelscope_pipeline``), ModelScope's ``configuration.json``: the
pipeline, the patch image size, the generation settings of the task's evaluate script, and our task options, so
that converting back restores the task.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from fairseq.tasks import TASK_REGISTRY

from models.ofa.hf_format import check_position_layout, convert_fairseq_to_hf, convert_hf_to_fairseq, \
    write_tokenizer_files
from tasks.ofa_task import FAIRSEQ_GENERATION_DEFAULTS, read_answers_file
from utils.checkpoint_utils import save_checkpoint_file, torch_load_safely

CONFIGURATION_FILE = "configuration.json"  # ModelScope's model configuration
ANSWERS_FILE = "answer2label.json"
# our generation option -> ModelScope's sequence generator argument (model.beam_search)
MODELSCOPE_GENERATION = {"beam": "beam_size", "max_len_a": "max_len_a", "max_len_b": "max_len_b",
                         "min_len": "min_len", "no_repeat_ngram_size": "no_repeat_ngram_size",
                         "temperature": "temperature", "lenpen": "len_penalty"}
# task options that name files of the converting machine; answers travel in answer2label.json instead
MACHINE_LOCAL_TASK_OPTIONS = ("data", "bpe_dir", "ans2label_file", "eval_cider_cached_tokens", "vqgan_model_path",
                              "vqgan_config_path", "clip_model_path", "gen_images_path")



def hf_dir_to_checkpoint(hf_dir: Union[str, os.PathLike]) -> Dict[str, Any]:
    """A model folder as the checkpoint dict our loader reads, with the task of its configuration.json when
    :func:`fairseq_file_to_hf_dir` wrote one (``cfg["model"]`` holds the complete model options)."""
    state, options = convert_hf_to_fairseq(hf_dir)
    cfg: Dict[str, Any] = {"model": argparse.Namespace(**options)}
    task = fairseq_task_from_configuration(hf_dir)
    if task is not None:
        cfg["task"] = task
    return {
        "args": None, "cfg": cfg, "model": state,
        # fairseq's entries for a model with no training history here (finetuning passes --reset-optimizer)
        "optimizer_history": [{"criterion_name": None, "optimizer_name": None, "lr_scheduler_state": {},
                               "num_updates": 0}],
        "task_state": {}, "extra_state": {},
    }


def hf_dir_to_fairseq_file(hf_dir: Union[str, os.PathLike], out_file: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Write :func:`hf_dir_to_checkpoint` of ``hf_dir`` to ``out_file``; returns the model options."""
    checkpoint = hf_dir_to_checkpoint(hf_dir)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint_file(checkpoint, out_file)
    return vars(checkpoint["cfg"]["model"])


def _task_cfg(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The task options a checkpoint was trained with ({} when it holds none, e.g. a bare state dict)."""
    cfg = checkpoint.get("cfg") or {}
    task = cfg.get("task") if isinstance(cfg, Mapping) else None
    if task:
        return dict(task)
    args = checkpoint.get("args")
    if isinstance(args, argparse.Namespace) and getattr(args, "task", None):
        return {**vars(args), "_name": args.task}
    return {}


def fairseq_file_to_hf_dir(checkpoint_file: Union[str, os.PathLike], out_dir: Union[str, os.PathLike],
                           arch_overrides: Optional[Mapping[str, Any]] = None,
                           task_overrides: Optional[Mapping[str, Any]] = None,
                           allow_position_mismatch: bool = False) -> Dict[str, Any]:
    """Convert our checkpoint file to a model folder the ports load as it is: pytorch_model.bin, config.json,
    the tokenizer files and (for tasks ModelScope has) configuration.json; returns the config."""
    checkpoint = torch_load_safely(str(checkpoint_file))
    hf_state, config = convert_fairseq_to_hf(checkpoint, arch_overrides)
    check_position_layout(config, allow_position_mismatch)
    task_cfg = {**_task_cfg(checkpoint), **(task_overrides or {})}
    configuration = modelscope_configuration(task_cfg) if task_cfg else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint_file(hf_state, out_dir / "pytorch_model.bin")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if task_cfg.get("bpe") == "bert":  # OFA-CN: the ports' OFATokenizerZH reads BERT's vocab.txt
        from data.bert_bpe import BERT_CN_DIR

        (out_dir / "vocab.txt").write_bytes((Path(task_cfg.get("bpe_dir") or BERT_CN_DIR) / "vocab.txt").read_bytes())
    else:
        write_tokenizer_files(out_dir)
    if configuration is not None:
        settings, answers = configuration
        (out_dir / CONFIGURATION_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        if answers is not None:
            (out_dir / ANSWERS_FILE).write_text(json.dumps(answers, ensure_ascii=False) + "\n")
    return config


def _answers(task_cfg: Mapping[str, Any]) -> Optional[Dict[str, int]]:
    """The task's candidate answers ({answer: label}), or None for open-ended tasks."""
    if task_cfg.get("ans2label_file"):
        path = task_cfg["ans2label_file"]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"the checkpoint's ans2label_file {path} is not here; pass "
                                    f"--task-overrides \"{{'ans2label_file': 'PATH'}}\"")
        return read_answers_file(path, "the checkpoint's ans2label_file")
    if task_cfg.get("ans2label_dict") and not task_cfg.get("unconstrained_training"):
        return json.loads(task_cfg["ans2label_dict"])
    return None


def modelscope_configuration(task_cfg: Mapping[str, Any]) -> Optional[Tuple[Dict[str, Any], Optional[Dict]]]:
    """(ModelScope's configuration.json, answer2label or None) for a checkpoint's task config; None when
    ModelScope has no pipeline for the task. Generation settings are those of the task's evaluate script."""
    name = task_cfg.get("_name")
    task_class = TASK_REGISTRY.get(name)
    if getattr(task_class, "modelscope_pipeline", None) is None:
        return None
    modelscope_task = task_class.modelscope_pipeline[0]
    generation = {**FAIRSEQ_GENERATION_DEFAULTS, **task_class.generation_defaults}
    beam_search = {theirs: generation[ours] for ours, theirs in MODELSCOPE_GENERATION.items()}
    beam_search["normalize_scores"] = not generation["unnormalized"]
    if task_cfg.get("constraint_range"):
        beam_search["constraint_range"] = task_cfg["constraint_range"]
    language = "zh" if task_cfg.get("bpe") == "bert" else "en"
    answers = _answers(task_cfg)
    gen_type = task_class.modelscope_settings(task_cfg, beam_search, answers)
    prompt_type = task_cfg.get("prompt_type") or "none"
    model = {"type": "ofa", "language": language, "gen_type": gen_type, "beam_search": beam_search,
             "patch_image_size": task_cfg.get("patch_image_size", 480),
             "max_image_size": task_cfg.get("max_image_size", task_cfg.get("patch_image_size", 480)),
             "imagenet_default_mean_and_std": bool(task_cfg.get("imagenet_default_mean_and_std", False)),
             # ModelScope's preprocessors default to 256 and to no decoder prompt (VQA's prompt_type)
             "max_src_length": task_cfg.get("max_src_length", 128),
             "max_tgt_length": task_cfg.get("max_tgt_length", 30),
             "prompt_type": prompt_type}
    if answers is not None:
        model["answer2label"] = ANSWERS_FILE
    # our task options travel along so that to-fairseq restores the task; this machine's file paths are unset
    # (kept as keys: --model-overrides only sets options a checkpoint has)
    fairseq_task = {k: None if k in MACHINE_LOCAL_TASK_OPTIONS else v for k, v in task_cfg.items()}
    if answers is not None and "ans2label_dict" in fairseq_task:
        fairseq_task["ans2label_dict"] = json.dumps(answers)
    configuration = {"framework": "pytorch", "task": modelscope_task, "pipeline": {"type": modelscope_task},
                     "model": model, "preprocessor": {}, "fairseq_task": fairseq_task}
    return configuration, answers


def fairseq_task_from_configuration(hf_dir: Union[str, os.PathLike]) -> Optional[Dict[str, Any]]:
    """Our task config stored in a folder's configuration.json by :func:`fairseq_file_to_hf_dir` (None if absent)."""
    path = Path(hf_dir) / CONFIGURATION_FILE
    if not path.is_file():
        return None
    configuration = json.loads(path.read_text())
    task = dict(configuration.get("fairseq_task") or {})
    return task or None
