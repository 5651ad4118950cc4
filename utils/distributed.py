"""``torchrun`` launches for train.py and evaluate.py on CPU and GPU alike."""
import os

import torch
from omegaconf import DictConfig, open_dict


def configure_torchrun(cfg: DictConfig) -> None:
    """Under ``torchrun`` (``RANK`` and ``WORLD_SIZE`` > 1 in the environment) take rank and world size from its
    environment and initialise from it (fairseq infers them from the GPU count, which fails on CPU); without a GPU
    fairseq's default backend nccl becomes gloo. A given ``--distributed-init-method`` is left alone."""
    dist_cfg = cfg.distributed_training
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    with open_dict(cfg):
        if dist_cfg.distributed_init_method is None and world_size > 1 and "RANK" in os.environ:
            dist_cfg.distributed_init_method = "env://"
            dist_cfg.distributed_world_size = world_size
            dist_cfg.distributed_rank = int(os.environ["RANK"])
            dist_cfg.device_id = int(os.environ.get("LOCAL_RANK", "0")) if use_cuda else 0
            dist_cfg.distributed_no_spawn = True
        if not use_cuda and dist_cfg.distributed_backend == "nccl":
            dist_cfg.distributed_backend = "gloo"
