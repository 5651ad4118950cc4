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
        model = task.build_model(cfg.model, from_checkpoint=True)
        history = state.get("optimizer_history") or [{}]
        if "num_updates" in history[-1]:
            model.set_num_updates(history[-1]["num_updates"])
        load_model_state(model, state["model"], filename, strict=strict, model_cfg=cfg.model)
        ensemble.append(model)
        state = None
    return ensemble, cfg, task
