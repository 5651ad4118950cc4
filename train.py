#!/usr/bin/env python3 -u
"""Train an OFA model on one CPU/GPU or across several (``torchrun``), with the original's command line:

    python train.py DATA --user-dir . --task caption --arch ofa_tiny \
        --criterion adjust_label_smoothed_cross_entropy --lr-scheduler polynomial_decay --warmup-ratio 0.06 ...

fairseq's options and training loop (``fairseq_cli.train``'s epoch loop, validation and save decisions as they
are), with :class:`trainer.Trainer` and :mod:`utils.checkpoint_utils` in place of fairseq's (weights-only
checkpoint loading, atomic saves, EMA options, ``--warmup-ratio``, FSDP2).
"""
import logging
import math
import os
import sys

logging.basicConfig(
    format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
    datefmt="%Y-%m-%d %H:%M:%S",
    level=os.environ.get("LOGLEVEL", "INFO").upper(),
    stream=sys.stdout,
)
logger = logging.getLogger("train")

import fairseq_cli.train as fairseq_train  # noqa: E402
import numpy as np  # noqa: E402
from fairseq import options, tasks, utils  # noqa: E402
from fairseq.dataclass.utils import convert_namespace_to_omegaconf, gen_parser_from_dataclass  # noqa: E402
from fairseq.distributed import utils as distributed_utils  # noqa: E402
from fairseq.logging import meters, metrics  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from trainer import EMA_INIT_OPTIONS, EMAInitConfig, Trainer, TrainingSetupError  # noqa: E402
from utils import checkpoint_utils  # noqa: E402
from utils.checkpoint_utils import CheckpointError  # noqa: E402
from utils.distributed import configure_torchrun  # noqa: E402

# fairseq_cli.train's epoch loop, validation and save decisions are used as they are; they save checkpoints and
# track the best score through that module's `checkpoint_utils`, which is ours here (atomic writes)
fairseq_train.checkpoint_utils = checkpoint_utils


def main(cfg: DictConfig) -> None:
    utils.import_user_module(cfg.common)
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        raise TrainingSetupError("give a batch size with --batch-size (or --max-tokens)")
    metrics.reset()
    if cfg.common.log_file is not None:
        logger.addHandler(logging.FileHandler(filename=cfg.common.log_file))
    np.random.seed(cfg.common.seed)
    utils.set_torch_seed(cfg.common.seed)
    if distributed_utils.is_master(cfg.distributed_training):
        os.makedirs(cfg.checkpoint.save_dir, exist_ok=True)
    logger.info(cfg)

    task = tasks.setup_task(cfg.task)
    if not cfg.criterion:
        raise TrainingSetupError("give a criterion with --criterion")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    logger.info(model)
    logger.info("task: %s, model: %s, criterion: %s", type(task).__name__, type(model).__name__,
                type(criterion).__name__)
    logger.info("num. model params: {:,} (num. trained: {:,})".format(
        sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.parameters() if p.requires_grad)))
    for valid_subset in cfg.dataset.valid_subset.split(","):
        task.load_dataset(valid_subset, combine=False, epoch=1)

    trainer = Trainer(cfg, task, model, criterion)
    logger.info("training on %d devices (GPUs/CPUs), max sentences per device = %s",
                cfg.distributed_training.distributed_world_size, cfg.dataset.batch_size)

    _, epoch_itr = checkpoint_utils.load_checkpoint(cfg.checkpoint, trainer, disable_iterator_cache=True)
    max_epoch = cfg.optimization.max_epoch or math.inf
    if max_epoch != math.inf:
        trainer.lr_reinit(total_updates(cfg, len(epoch_itr)), trainer.get_num_updates())
    lr = trainer.get_lr()

    train_meter = meters.StopwatchMeter()
    train_meter.start()
    while epoch_itr.next_epoch_idx <= max_epoch:
        if lr <= cfg.optimization.stop_min_lr:
            logger.info("stopping: learning rate %g <= --stop-min-lr %g", lr, cfg.optimization.stop_min_lr)
            break
        valid_losses, should_stop = fairseq_train.train(cfg, trainer, task, epoch_itr)
        if should_stop:
            break
        lr = trainer.lr_step(epoch_itr.epoch, valid_losses[0])
        epoch_itr = trainer.get_train_iterator(epoch_itr.next_epoch_idx, load_dataset=True,
                                               disable_iterator_cache=True)
    train_meter.stop()
    logger.info("done training in %.1f seconds", train_meter.sum)


def update_freq_of_epoch(cfg: DictConfig, epoch: int) -> int:
    """``--update-freq`` may list one value per epoch; the last one holds for later epochs."""
    update_freq = cfg.optimization.update_freq
    return update_freq[min(epoch, len(update_freq)) - 1]


def total_updates(cfg: DictConfig, batches_per_epoch: int) -> int:
    """Updates of the whole run with ``--max-epoch``: sum over epochs of ceil(batches / update freq)."""
    return sum(math.ceil(batches_per_epoch / update_freq_of_epoch(cfg, epoch))
               for epoch in range(1, cfg.optimization.max_epoch + 1))


def cli_main(modify_parser=None) -> None:
    parser = options.get_training_parser()
    gen_parser_from_dataclass(parser.add_argument_group("checkpoint (OFA)"), EMAInitConfig())
    args = options.parse_args_and_arch(parser, modify_parser=modify_parser)
    cfg = convert_namespace_to_omegaconf(args)
    with open_dict(cfg):
        for name in EMA_INIT_OPTIONS:
            cfg.checkpoint[name] = getattr(args, name)
    configure_torchrun(cfg)
    try:
        distributed_utils.call_main(cfg, main)
    except (CheckpointError, TrainingSetupError) as err:
        sys.exit(f"train.py: error: {err}")


if __name__ == "__main__":
    cli_main()
