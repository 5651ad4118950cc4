#!/usr/bin/env python3 -u
"""Train an OFA model on one CPU/GPU or across several (``torchrun``), with the original's command line:

    python train.py DATA --user-dir . --task caption --arch ofa_tiny \
        --criterion adjust_label_smoothed_cross_entropy --lr-scheduler polynomial_decay --warmup-ratio 0.06 ...

fairseq's options and training loop, with :class:`trainer.Trainer` and :mod:`utils.checkpoint_utils` in place of
fairseq's (weights-only checkpoint loading, atomic saves, EMA options, ``--warmup-ratio``, FSDP2). The epoch loop,
validation and save decisions follow fairseq_cli/train.py; they stay here because they call our checkpoint_utils
and the per-epoch and per-validation bad-row reports (fairseq's own functions are bound to fairseq's module).
"""
import logging
import math
import os
import shutil
import sys
from itertools import chain
from typing import Any, Dict, List, Optional, Tuple

from utils.logging_setup import log_to_file, log_to_stdout, quiet_third_party

log_to_stdout()  # before fairseq_cli's import configures logging its own way
logger = logging.getLogger("train")

quiet_third_party()  # before fairseq's import-time notices; OFA_SHOW_WARNINGS=1 shows them

import numpy as np  # noqa: E402
from fairseq import options, tasks, utils  # noqa: E402
from fairseq.data import iterators  # noqa: E402
from fairseq.dataclass.utils import convert_namespace_to_omegaconf, gen_parser_from_dataclass  # noqa: E402
from fairseq.distributed import utils as distributed_utils  # noqa: E402
from fairseq.logging import meters, metrics, progress_bar  # noqa: E402
from fairseq_cli.train import get_training_stats, should_stop_early  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from tasks.loading import register_ofa_components  # noqa: E402
from trainer import Trainer  # noqa: E402
from training.ema import EMA_INIT_OPTIONS, EMAInitConfig  # noqa: E402
from training.precision import TrainingSetupError  # noqa: E402
from utils import checkpoint_utils, hub, option_checks  # noqa: E402
from utils.checkpoint_utils import CheckpointError  # noqa: E402
from utils.cli import parse_args_and_arch  # noqa: E402
from utils.distributed import configure_torchrun  # noqa: E402


def main(cfg: DictConfig) -> None:
    utils.import_user_module(cfg.common)
    option_checks.check_training_options(cfg)
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        raise TrainingSetupError("give a batch size with --batch-size (or --max-tokens)")
    metrics.reset()
    if cfg.common.log_file is not None:
        logger.addHandler(logging.FileHandler(filename=cfg.common.log_file))
    np.random.seed(cfg.common.seed)
    utils.set_torch_seed(cfg.common.seed)
    save_dir_lock = None
    is_master = distributed_utils.is_master(cfg.distributed_training)
    if is_master and not cfg.checkpoint.no_save:
        save_dir_lock = checkpoint_utils.prepare_save_dir(cfg.checkpoint.save_dir)  # held until training ends
    # the config and model printout go to the log file (or save_dir/train_details.log), not the console
    details = cfg.common.log_file or os.path.join(cfg.checkpoint.save_dir, "train_details.log")
    if is_master:
        log_to_file(logger, "config", cfg, details)

    task = tasks.setup_task(cfg.task)
    if not cfg.criterion:
        raise TrainingSetupError("give a criterion with --criterion")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    if is_master:
        log_to_file(logger, "model", model, details)
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
    if is_master and not cfg.checkpoint.no_save:
        warning = checkpoint_disk_warning(cfg, checkpoint_bytes(cfg, model), len(epoch_itr),
                                          shutil.disk_usage(cfg.checkpoint.save_dir).free)
        if warning:
            logger.warning(warning)
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
        valid_losses, should_stop = train(cfg, trainer, task, epoch_itr)
        if should_stop:
            break
        lr = trainer.lr_step(epoch_itr.epoch, valid_losses[0])
        epoch_itr = trainer.get_train_iterator(epoch_itr.next_epoch_idx, load_dataset=True,
                                               disable_iterator_cache=True)
    train_meter.stop()
    logger.info("done training in %.1f seconds", train_meter.sum)
    if save_dir_lock is not None:
        save_dir_lock.release()


def checkpoint_disk_warning(cfg: DictConfig, checkpoint_bytes: int, batches_per_epoch: int,
                            free_bytes: int) -> Optional[str]:
    """What to say when the checkpoints this run keeps would take more than the ``free_bytes`` of --save-dir."""
    per_epoch = max(1, math.ceil(batches_per_epoch / update_freq_of_epoch(cfg, 1)))
    max_update = cfg.optimization.max_update or math.inf
    epochs = min(cfg.optimization.max_epoch or math.inf,
                 math.ceil(max_update / per_epoch) if math.isfinite(max_update) else math.inf)
    count = checkpoint_utils.kept_checkpoints(cfg.checkpoint, epochs, min(max_update, epochs * per_epoch),
                                              validating=not cfg.dataset.disable_validation)
    if not math.isfinite(count) or count * checkpoint_bytes <= free_bytes:
        return None

    def size(n: float) -> str:
        return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"

    return (f"the {count:.0f} checkpoints this run keeps in {cfg.checkpoint.save_dir} take about "
            f"{size(count * checkpoint_bytes)} ({size(checkpoint_bytes)} each), more than the {size(free_bytes)} "
            "free there: --no-epoch-checkpoints, --keep-last-epochs N or --keep-interval-updates N keep fewer")


def checkpoint_bytes(cfg: DictConfig, model) -> int:
    """About the size of one checkpoint: the weights and buffers (shared ones once), the EMA copy, Adam's two
    moments of the trained parameters."""
    # parameters() and buffers() give a shared tensor once; numel() of a sharded (FSDP) parameter is its whole size
    weights = sum(t.numel() * t.element_size() for t in chain(model.parameters(), model.buffers()))
    trained = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)  # fp32 moments
    adam = cfg.optimizer is not None and cfg.optimizer.get("_name") == "adam"
    return weights * (2 if cfg.ema.store_ema else 1) + (2 * trained if adam else 0)


def update_freq_of_epoch(cfg: DictConfig, epoch: int) -> int:
    """``--update-freq`` may list one value per epoch; the last one holds for later epochs."""
    update_freq = cfg.optimization.update_freq
    return update_freq[min(epoch, len(update_freq)) - 1]


def total_updates(cfg: DictConfig, batches_per_epoch: int) -> int:
    """Updates of the whole run with ``--max-epoch``: sum over epochs of ceil(batches / update freq)."""
    return sum(math.ceil(batches_per_epoch / update_freq_of_epoch(cfg, epoch))
               for epoch in range(1, cfg.optimization.max_epoch + 1))


def progress_bar_for(cfg: DictConfig, iterator, epoch: int, prefix: Optional[str] = None):
    """fairseq's progress bar (``--log-format``), TensorBoard logging on the master rank."""
    is_master = distributed_utils.is_master(cfg.distributed_training)
    return progress_bar.progress_bar(
        iterator,
        log_format=cfg.common.log_format,
        log_file=cfg.common.log_file,
        log_interval=cfg.common.log_interval,
        epoch=epoch,
        prefix=prefix,
        tensorboard_logdir=cfg.common.tensorboard_logdir if is_master else None,
        default_log_format="tqdm" if not cfg.common.no_progress_bar else "simple",
    )


@metrics.aggregate("train")
def train(cfg: DictConfig, trainer: Trainer, task, epoch_itr) -> Tuple[List[Optional[float]], bool]:
    """Train for one epoch (or until a stop condition) and return the validation losses."""
    itr = epoch_itr.next_epoch_itr(
        fix_batches_to_gpus=cfg.distributed_training.fix_batches_to_gpus,
        shuffle=epoch_itr.next_epoch_idx > cfg.dataset.curriculum,
    )
    itr = iterators.GroupedIterator(itr, update_freq_of_epoch(cfg, epoch_itr.epoch),
                                    skip_remainder_batch=cfg.optimization.skip_remainder_batch)
    progress = progress_bar_for(cfg, itr, epoch_itr.epoch)
    trainer.begin_epoch(epoch_itr.epoch)

    valid_subsets = cfg.dataset.valid_subset.split(",")
    valid_losses, should_stop = [None], False
    num_updates = trainer.get_num_updates()
    for samples in progress:
        with metrics.aggregate("train_inner"):
            log_output = trainer.train_step(samples)
        if log_output is not None:  # None after an OOM or overflow
            num_updates = trainer.get_num_updates()
            if num_updates % cfg.common.log_interval == 0:
                progress.log(get_training_stats(metrics.get_smoothed_values("train_inner")), tag="train_inner",
                             step=num_updates)
                metrics.reset_meters("train_inner")
        valid_losses, should_stop = validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets,
                                                      end_of_epoch=not itr.has_next())
        if should_stop:
            break

    trainer.log_skipped_rows("train", f"epoch {epoch_itr.epoch}")
    logger.info("end of epoch %d (average epoch stats below)", epoch_itr.epoch)
    progress.print(get_training_stats(metrics.get_smoothed_values("train")), tag="train", step=num_updates)
    metrics.reset_meters("train")
    return valid_losses, should_stop


def validate_and_save(cfg: DictConfig, trainer: Trainer, task, epoch_itr, valid_subsets: List[str],
                      end_of_epoch: bool) -> Tuple[List[Optional[float]], bool]:
    """Validate and save when the ``--validate-*``/``--save-*`` intervals say so; decide whether to stop."""
    num_updates = trainer.get_num_updates()
    max_update = cfg.optimization.max_update or math.inf
    should_stop = num_updates >= max_update
    if should_stop:
        logger.info("stopping: num_updates %d >= max_update %s", num_updates, max_update)
    hours = trainer.cumulative_training_time() / 3600
    if 0 < cfg.optimization.stop_time_hours < hours:
        should_stop = True
        logger.info("stopping: cumulative training time %.2f h > --stop-time-hours", hours)

    do_save = (
        (end_of_epoch and epoch_itr.epoch % cfg.checkpoint.save_interval == 0)
        or should_stop
        or (cfg.checkpoint.save_interval_updates > 0 and num_updates > 0
            and num_updates % cfg.checkpoint.save_interval_updates == 0
            and num_updates >= cfg.dataset.validate_after_updates)
    )
    do_validate = (
        ((not end_of_epoch and do_save)
         or (end_of_epoch and epoch_itr.epoch % cfg.dataset.validate_interval == 0)
         or should_stop
         or (cfg.dataset.validate_interval_updates > 0 and num_updates > 0
             and num_updates % cfg.dataset.validate_interval_updates == 0))
        and not cfg.dataset.disable_validation
        and num_updates >= cfg.dataset.validate_after_updates
    )
    valid_losses = validate(cfg, trainer, task, epoch_itr, valid_subsets) if do_validate else [None]
    should_stop |= should_stop_early(cfg, valid_losses[0])
    if do_save or should_stop:
        checkpoint_utils.save_checkpoint(cfg.checkpoint, trainer, epoch_itr, valid_losses[0])
    return valid_losses, should_stop


def validate(cfg: DictConfig, trainer: Trainer, task, epoch_itr, subsets: List[str]) -> List[Optional[float]]:
    """Run the validation subsets and return their ``--best-checkpoint-metric`` values."""
    if cfg.dataset.fixed_validation_seed is not None:
        utils.set_torch_seed(cfg.dataset.fixed_validation_seed)
    trainer.begin_valid_epoch(epoch_itr.epoch)
    valid_losses = []
    for subset_index, subset in enumerate(subsets):
        logger.info('begin validation on "%s" subset', subset)
        itr = trainer.get_valid_iterator(subset).next_epoch_itr(shuffle=False, set_dataset_epoch=False)
        progress = progress_bar_for(cfg, itr, epoch_itr.epoch, prefix=f"valid on '{subset}' subset")
        with metrics.aggregate(new_root=True) as agg:
            for i, sample in enumerate(progress):
                if cfg.dataset.max_valid_steps is not None and i > cfg.dataset.max_valid_steps:
                    break
                trainer.valid_step(sample)
        trainer.log_skipped_rows("valid", f"validation on '{subset}'")
        stats = agg.get_smoothed_values()
        if hasattr(task, "get_valid_stats"):
            stats = task.get_valid_stats(cfg, trainer, stats)
        stats = get_valid_stats(cfg, trainer, stats, tracking_best=subset_index == 0)
        if hasattr(task, "post_validate"):
            task.post_validate(trainer.get_model(), stats, agg)
        progress.print(stats, tag=subset, step=trainer.get_num_updates())
        metric = cfg.checkpoint.best_checkpoint_metric
        if metric not in stats:
            raise KeyError(f"--best-checkpoint-metric {metric!r} is not among the validation stats "
                           f"{sorted(stats)}")
        valid_losses.append(stats[metric])
    return valid_losses


def get_valid_stats(cfg: DictConfig, trainer: Trainer, stats: Dict[str, Any], tracking_best: bool) -> Dict[str, Any]:
    stats["num_updates"] = trainer.get_num_updates()
    metric = cfg.checkpoint.best_checkpoint_metric
    if tracking_best and hasattr(checkpoint_utils.save_checkpoint, "best") and metric in stats:
        best = max if cfg.checkpoint.maximize_best_checkpoint_metric else min
        stats[f"best_{metric}"] = best(checkpoint_utils.save_checkpoint.best, stats[metric])
    return stats


def parse_config(argv: Optional[List[str]] = None, modify_parser=None) -> DictConfig:
    """The run's config from the command line (default: ``sys.argv[1:]``)."""
    register_ofa_components()  # the OFA --task/--arch choices (and --help), also without --user-dir
    parser = options.get_training_parser()
    gen_parser_from_dataclass(parser.add_argument_group("checkpoint (OFA)"), EMAInitConfig())
    args = parse_args_and_arch(parser, argv, modify_parser=modify_parser)  # --help lists the task/model options
    cfg = convert_namespace_to_omegaconf(args)
    with open_dict(cfg):
        for name in EMA_INIT_OPTIONS:
            cfg.checkpoint[name] = getattr(args, name)
    return cfg


def cli_main(modify_parser=None) -> None:
    option_checks.exit_if_user_dir_missing("train.py", sys.argv[1:])
    cfg = parse_config(modify_parser=modify_parser)
    configure_torchrun(cfg)
    try:
        for name in ("restore_file", "finetune_from_model"):  # ofa:<name>: a released checkpoint, downloaded once
            if cfg.checkpoint[name]:
                cfg.checkpoint[name] = hub.resolve(cfg.checkpoint[name])
        distributed_utils.call_main(cfg, main)
    except (CheckpointError, TrainingSetupError, option_checks.OptionError, hub.HubError) as err:
        sys.exit(f"train.py: error: {err}")


if __name__ == "__main__":
    cli_main()
