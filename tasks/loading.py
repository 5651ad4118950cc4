"""Loading OFA models and tasks from checkpoints (what fairseq's ``checkpoint_utils`` does for its own)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from utils.checkpoint_utils import checkpoint_cfg, load_checkpoint_to_cpu, load_model_state
from utils.lr_scheduler import use_polynomial_decay_with_warmup_ratio


def register_ofa_components() -> None:
    """Import the OFA packages so their models, tasks and criterions are in fairseq's registries, and make
    ``--lr-scheduler polynomial_decay`` the original's (with ``--warmup-ratio``), as ``--user-dir`` does."""
    import criterions  # noqa: F401
    import models  # noqa: F401
    import tasks  # noqa: F401

    use_polynomial_decay_with_warmup_ratio()


def load_model_ensemble_and_task(filenames: List[str], arg_overrides: Optional[Dict[str, Any]] = None, task=None,
                                 strict: bool = True, suffix: str = "", state: Optional[dict] = None):
    """Models, config and task from checkpoints, as fairseq's function of that name (without model sharding).

    The task is set up from the first checkpoint's config (updated by ``arg_overrides``) unless ``task`` is given.
    """
    from fairseq import tasks as fairseq_tasks

    if state is not None and len(filenames) != 1:
        raise ValueError("a preloaded state needs exactly one filename")
    register_ofa_components()
    ensemble, cfg = [], None
    for filename in filenames:
        filename = filename.replace(".pt", suffix + ".pt") if suffix else filename
        if state is None:
            state = load_checkpoint_to_cpu(filename, arg_overrides)
        cfg = checkpoint_cfg(state, filename)
        if task is None:
            task = fairseq_tasks.setup_task(cfg.task, from_checkpoint=True)
        if "task_state" in state:
            task.load_state_dict(state["task_state"])
        # built with its random initialisation although the checkpoint replaces every weight: the draws it takes
        # keep the random stream after loading the original's, so sampled generations (image_gen) under a --seed
        # are the original's
        model = task.build_model(cfg.model, from_checkpoint=True)
        load_model_state(model, state["model"], filename, strict=strict, model_cfg=cfg.model)
        history = state.get("optimizer_history") or [{}]
        if "num_updates" in history[-1]:
            model.set_num_updates(history[-1]["num_updates"])
        ensemble.append(model)
        state = None
    return ensemble, cfg, task


def prediction_tasks() -> list[str]:
    """Names of the registered tasks that make rows from prediction requests (``OFATask.predicts``)."""
    from fairseq.tasks import TASK_REGISTRY

    from tasks.ofa_task import OFATask

    register_ofa_components()
    return sorted(name for name, cls in TASK_REGISTRY.items() if issubclass(cls, OFATask) and cls.predicts())


class TaskMismatchError(ValueError):
    """The task asked for is not the checkpoint's (or it holds none) and zero-shot use was not asked for."""


def load_for_inference(paths: List[str], task_name: Optional[str], overrides: Dict[str, Any], zero_shot: bool,
                       task_cfg=None, state: Optional[dict] = None):
    """Models, config and task for evaluation or prediction (evaluate.py, the predictor).

    The task is the checkpoint's (``task_name`` defaults to it and must match it) unless ``zero_shot``: then it
    is built from ``task_cfg`` (default: ``task_name`` with ``overrides``) and runs the checkpoint's weights.
    ``state`` is the first checkpoint, already loaded with ``overrides``.
    """
    from fairseq import tasks as fairseq_tasks
    from omegaconf import OmegaConf

    register_ofa_components()
    state = state if state is not None else load_checkpoint_to_cpu(paths[0], overrides)
    saved_cfg = checkpoint_cfg(state, paths[0])
    saved_task = saved_cfg.task._name if saved_cfg.get("task") else None
    task_name = task_name or saved_task
    if task_name is None:
        raise TaskMismatchError(f"{paths[0]} holds no task configuration (e.g. a converted checkpoint): "
                                "name the task, e.g. --task caption")
    if task_name != saved_task and not zero_shot:
        held = f"a '{saved_task}' checkpoint" if saved_task else "a checkpoint without a task configuration"
        other = f" (or --task {saved_task})" if saved_task else ""
        raise TaskMismatchError(f"{paths[0]} is {held}: use --zero-shot to run it as '{task_name}'{other}")
    task = None
    if zero_shot:
        task = fairseq_tasks.setup_task(task_cfg or OmegaConf.create({"_name": task_name, **overrides}))
    models, saved_cfg, task = load_model_ensemble_and_task(
        paths, arg_overrides=overrides, task=task, state=state if len(paths) == 1 else None)
    task.zero_shot = zero_shot  # before a generator is built: it reads the task's zero-shot rules
    return models, saved_cfg, task
