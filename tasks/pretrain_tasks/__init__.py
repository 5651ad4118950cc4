"""Pretraining tasks."""
from tasks.pretrain_tasks.unify_task import UnifyTask  # noqa: F401
