#!/usr/bin/env python3 -u
"""Evaluate an OFA checkpoint on a task's TSV: ``python evaluate.py DATA --path CKPT --task caption ...``.

Same command line as the original (fairseq's generation parser plus ``--ema-eval``,
``--beam-search-vqa-eval`` and ``--zero-shot``). Writes ``{gen_subset}_predict.json`` (the original's format)
and ``{gen_subset}_metrics.json`` into ``--results-path``. Runs on CPU or GPU, in one process or under
``torchrun`` (gloo on CPU), each sample counted once.
"""
from __future__ import annotations

import logging
import os
import sys
from itertools import chain

from utils.logging_setup import log_to_file, log_to_stdout, quiet_third_party

quiet_third_party()  # before fairseq's import-time notices; OFA_SHOW_WARNINGS=1 shows them

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fairseq import options, utils  # noqa: E402
from fairseq.dataclass.utils import convert_namespace_to_omegaconf  # noqa: E402
from fairseq.distributed import utils as distributed_utils  # noqa: E402
from fairseq.logging import progress_bar  # noqa: E402
from fairseq.utils import reset_logging  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from models.quantization import QUANTIZE_CHOICES, quantize_for_inference  # noqa: E402
from tasks.loading import load_for_inference, register_ofa_components  # noqa: E402
from utils import checkpoint_utils, hub, option_checks, precision  # noqa: E402
from utils.cli import parse_args_and_arch, parse_dict_literal  # noqa: E402
from utils.distributed import configure_torchrun  # noqa: E402
from utils.metrics import write_json  # noqa: E402

log_to_stdout()
logger = logging.getLogger("ofa.evaluate")


class EvaluationError(Exception):
    """A problem with the user's inputs, reported as one line."""


def load_models_and_task(cfg: DictConfig, overrides: dict, zero_shot: bool):
    """Load the checkpoint(s); the task comes from the checkpoint, or from the command line with ``--zero-shot``."""
    paths = utils.split_paths(cfg.common_eval.path)
    for path in paths:
        if not os.path.isfile(path):
            raise EvaluationError(f"checkpoint not found: {path}")
    return load_for_inference(paths, cfg.task._name, overrides, zero_shot, task_cfg=cfg.task)


def _same_files(data: str) -> list[str]:
    return [os.path.abspath(path) for path in data.split(",")]


def load_ema_weights(model, path: str) -> None:
    """Replace ``model``'s weights by the EMA copy stored in the checkpoint's ``extra_state``."""
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    extra_state = state.get("extra_state") or {}
    ema = extra_state.get("ema")
    if ema is None:
        raise EvaluationError(f"--ema-eval: {path} holds no EMA weights (extra_state['ema'])")
    checkpoint_utils.load_model_state(model, {name: tensor.float() for name, tensor in ema.items()}, path)


def main(cfg: DictConfig, ema_eval: bool = False, beam_search_vqa_eval: bool = False, zero_shot: bool = False,
         quantize: str = "none"):
    utils.import_user_module(cfg.common)
    reset_logging()
    if cfg.common_eval.results_path is None:
        raise EvaluationError("give --results-path DIR for the predictions and metrics")
    log_to_file(logger, "config", cfg, os.path.join(cfg.common_eval.results_path, "evaluate_details.log"))
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        raise EvaluationError("give a batch size with --batch-size (or --max-tokens)")
    if cfg.generation.lm_path is not None:
        raise EvaluationError("--lm-path (language model fusion) is not supported by evaluate.py")
    option_checks.check_generation_options(cfg)
    if cfg.common.seed is not None and not cfg.generation.no_seed_provided:
        np.random.seed(cfg.common.seed)
        utils.set_torch_seed(cfg.common.seed)

    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    if cfg.common.fp16 and not use_cuda:
        logger.warning("--fp16 ignored: evaluating on CPU in fp32 (--bf16 or --amp: bfloat16)")
    dtype = precision.inference_dtype(cfg.common, "cuda" if use_cuda else "cpu")
    logger.info("inference precision: {}".format(str(dtype).replace("torch.", "")))
    if use_cuda:
        torch.cuda.set_device(cfg.distributed_training.device_id)

    overrides = parse_dict_literal(cfg.common_eval.model_overrides, "--model-overrides")
    data = cfg.task.get("data")  # the positional DATA
    if data and _same_files(overrides.get("data", data)) != _same_files(data):
        raise EvaluationError(f"DATA {data!r} and --model-overrides' data {overrides['data']!r} differ: give one")
    if data:
        overrides["data"] = data
    logger.info("loading model(s) from {}".format(cfg.common_eval.path))
    models, _, task = load_models_and_task(cfg, overrides, zero_shot)
    # the task (and so the dataset) has the saved task config updated by --model-overrides
    task.load_dataset(cfg.dataset.gen_subset)

    paths = utils.split_paths(cfg.common_eval.path)
    for model, path in zip(models, paths):
        if ema_eval:
            logger.info("loading EMA weights from {}".format(path))
            load_ema_weights(model, path)
        model.eval()
        model.to(dtype)  # cast once, not autocast at every decoding step
        if use_cuda and not cfg.distributed_training.pipeline_model_parallel:
            model.cuda()
        model.prepare_for_inference_(cfg)
        quantize_for_inference(model, quantize)

    world_size = cfg.distributed_training.distributed_world_size
    itr = task.get_batch_iterator(
        dataset=task.dataset(cfg.dataset.gen_subset),
        max_tokens=cfg.dataset.max_tokens,
        max_sentences=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), *[m.max_positions() for m in models]),
        ignore_invalid_inputs=cfg.dataset.skip_invalid_size_inputs_valid_test,
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
        seed=cfg.common.seed,
        num_shards=world_size,
        shard_id=cfg.distributed_training.distributed_rank,
        num_workers=cfg.dataset.num_workers,
        data_buffer_size=cfg.dataset.data_buffer_size,
    ).next_epoch_itr(shuffle=False)
    progress = progress_bar.progress_bar(
        itr,
        log_format=cfg.common.log_format,
        log_interval=cfg.common.log_interval,
        default_log_format=("tqdm" if not cfg.common.no_progress_bar else "simple"),
    )
    generator = task.build_generator(models, cfg.generation)
    task.set_inference_type("beamsearch" if beam_search_vqa_eval else "allcand")

    records = []
    for sample in progress:
        if "net_input" not in sample:
            continue
        if use_cuda:
            sample = utils.move_to_cuda(sample)
        sample = precision.cast_floats(sample, dtype)
        with torch.no_grad():
            results, scores = task.eval_step(generator, models, sample)
        references = task.sample_references(sample)
        for i, result in enumerate(results):
            records.append({
                "result": result,
                "score": None if scores is None else float(scores[i]),
                "references": None if references is None else references[i],
            })
        progress.log({"sentences": sample["nsentences"]})

    records = gather_records(records, world_size)
    _check_every_row_evaluated(task.dataset(cfg.dataset.gen_subset), len(records))
    scores = [record["score"] for record in records if record["score"] is not None]
    if scores:
        logger.info("score_sum: {}, score_cnt: {}, score: {}".format(
            sum(scores), len(scores), round(sum(scores) / len(scores), 4)
        ))
    if world_size == 1 or torch.distributed.get_rank() == 0:
        results_path = cfg.common_eval.results_path
        predict_path = os.path.join(results_path, "{}_predict.json".format(cfg.dataset.gen_subset))
        write_json(predict_path, [record["result"] for record in records])
        task_metrics = {"task": task.cfg._name, "num_samples": len(records)}
        task_metrics.update(task.compute_metrics(records))
        write_json(os.path.join(results_path, "{}_metrics.json".format(cfg.dataset.gen_subset)), task_metrics)
        logger.info("wrote {} predictions to {}; metrics: {}".format(len(records), predict_path, task_metrics))


def gather_records(records: list[dict], world_size: int) -> list[dict]:
    """All ranks' per-sample records on every rank, rank 0's first.

    Each rank reads its own contiguous slice of the TSV and shorter slices are padded with empty batches
    (skipped), so concatenating counts every row once and keeps file order. Ids cannot be used to drop
    repeats: some tasks number samples within their rank's slice, as the original does.
    """
    if world_size == 1:
        return records
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, records)
    return list(chain.from_iterable(gathered))


def _check_every_row_evaluated(dataset, num_records: int) -> None:
    # the TSV reader knows its file's row count; a gap means rows were skipped (e.g. too long inputs)
    reader = getattr(dataset, "dataset", None)
    if hasattr(reader, "get_total_row_count") and reader.get_total_row_count() != num_records:
        logger.warning("evaluated {} samples but {} has {} rows".format(
            num_records, getattr(reader, "file_path", "the data file"), reader.get_total_row_count()
        ))




def cli_main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and evaluate; user errors exit with one line."""
    option_checks.exit_if_user_dir_missing("evaluate.py", sys.argv[1:] if argv is None else argv)
    register_ofa_components()  # --task choices need the OFA tasks, also without --user-dir
    parser = options.get_generation_parser()
    parser.add_argument("--ema-eval", action="store_true",
                        help="evaluate the EMA weights stored in the checkpoint (extra_state['ema'])")
    parser.add_argument("--beam-search-vqa-eval", action="store_true",
                        help="VQA: decode answers by trie-constrained beam search (fast) instead of scoring every "
                             "candidate answer (slower, the published numbers)")
    parser.add_argument("--zero-shot", action="store_true",
                        help="build the task from the command line instead of the checkpoint and evaluate the "
                             "checkpoint's weights on it (e.g. a pretrained checkpoint on VQA)")
    parser.add_argument("--quantize", choices=QUANTIZE_CHOICES, default="none",
                        help="int8: the Transformer layers' Linear modules in int8 (CPU inference, fp32 model)")
    args = parse_args_and_arch(parser, argv)  # --help lists the task/model options
    cfg = convert_namespace_to_omegaconf(args)
    configure_torchrun(cfg)
    try:
        cfg.common_eval.path = hub.resolve_list(cfg.common_eval.path)  # ofa:<name>: downloaded once
        distributed_utils.call_main(
            cfg, main, ema_eval=args.ema_eval, beam_search_vqa_eval=args.beam_search_vqa_eval, zero_shot=args.zero_shot,
            quantize=args.quantize,
        )
    except (EvaluationError, checkpoint_utils.CheckpointError, OSError, ValueError) as err:
        # bad checkpoints, files, rows and flags; LOGLEVEL=DEBUG shows where they were raised
        logger.debug("evaluation failed", exc_info=True)
        sys.exit("evaluate.py: error: " + " ".join(str(err).split()))


if __name__ == "__main__":
    cli_main()
