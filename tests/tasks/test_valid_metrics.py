"""Validation metrics during training: each task logs the metric its scripts select the best checkpoint by."""
import json
import math
from argparse import Namespace

import pytest
import torch
from fairseq.logging import metrics

from models.ofa import build_ofa_model

SMALL = dict(encoder_embed_dim=64, decoder_embed_dim=64, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128,
             encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
             resnet_type="resnet18")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from dataset.make_tiny_dataset import make_tiny_dataset
    root = tmp_path_factory.mktemp("tiny")
    make_tiny_dataset(root, tasks=["caption", "refcoco", "vqa", "snli_ve", "glue", "gigaword"], image_size=48)
    return root


def head_tsv(path, rows, out):
    out.write_text("".join(path.read_text().splitlines(keepends=True)[:rows]))
    return str(out)


def _task_model_sample(task_name, data, tmp_path, **options):
    """A task reading the first 4 rows of ``data``, a tiny random model and the batch of those rows."""
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    import tasks  # noqa: F401

    valid = head_tsv(data, 4, tmp_path / "valid.tsv")
    task = setup_task(OmegaConf.create({"_name": task_name, "data": f"{valid},{valid}", "patch_image_size": 48,
                                        **options}))
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", dictionary=task.source_dictionary, **SMALL).eval()
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    return task, model, dataset.collater([dataset[i] for i in range(len(dataset))])


def validate(task_name, data, tmp_path, **options):
    """One validation pass of a tiny random model through the task's real valid_step/reduce_metrics."""
    import criterions  # noqa: F401
    from criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion

    task, model, sample = _task_model_sample(task_name, data, tmp_path, **options)
    if task.generates_at_validation:  # what task.build_model does for a model built from the command line
        task.sequence_generator = task.build_generator([model], Namespace(**json.loads(task.cfg.eval_args)))
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    _, _, log = task.valid_step(sample, model, criterion)
    with metrics.aggregate() as agg:
        task.reduce_metrics([log], criterion)
    return log, agg.get_smoothed_values()


@pytest.mark.parametrize("task_name,folder,options,metric,low,high", [
    ("caption", "caption", {"selected_cols": "0,4,2", "eval_cider": True,
                            "eval_args": '{"beam": 2, "max_len_b": 8}'}, "cider", 0.0, 10.0),
    ("refcoco", "refcoco", {"selected_cols": "0,4,2,3", "eval_acc": True,
                            "eval_args": '{"beam": 2, "min_len": 4, "max_len_a": 0, "max_len_b": 4}'}, "score", 0.0, 1.0),
    ("gigaword", "gigaword", {"selected_cols": "0,1", "eval_rouge": True,
                              "eval_args": '{"beam": 2, "max_len_b": 8}'}, "rougeL_f1", 0.0, 100.0),
    ("sst2", "glue/sst2", {"selected_cols": "0,1"}, "acc", 0.0, 1.0),
])
def test_validation_logs_the_task_metric(tiny_data, tmp_path, task_name, folder, options, metric, low, high):
    log, values = validate(task_name, tiny_data / folder / "valid.tsv", tmp_path, **options)
    assert log[f"_{metric}_cnt"] == 4
    assert low <= values[metric] <= high
    assert values[metric] == pytest.approx(round(log[f"_{metric}_sum"] / 4, 4))


def test_cola_matthews_correlation_from_counts(tiny_data, tmp_path):
    log, values = validate("cola", tiny_data / "glue" / "cola" / "valid.tsv", tmp_path, selected_cols="1,2")
    assert sum(log[f"_{c}"] for c in ("tp", "tn", "fp", "fn")) == 4
    assert -1.0 <= values["mcc"] <= 1.0


def test_matthews_corrcoef_by_hand():
    from tasks.nlu_tasks.glue import matthews_corrcoef
    assert matthews_corrcoef(3, 3, 0, 0) == 1.0
    assert matthews_corrcoef(0, 0, 2, 2) == -1.0
    assert matthews_corrcoef(2, 0, 2, 0) == 0.0
    assert math.isclose(matthews_corrcoef(2, 1, 1, 1), (2 - 1) / math.sqrt(3 * 3 * 2 * 2))


def test_caption_eval_bleu_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="--eval-bleu is not supported"):
        validate("caption", tiny_data / "caption" / "valid.tsv", tmp_path, selected_cols="0,4,2", eval_bleu=True)


def test_refcoco_generators_write_only_bins(tiny_data, tmp_path):
    """Every refcoco generator (validation, evaluate.py, prediction) is confined to <bin_i> tokens: an untrained
    model, which writes words here without the constraint, still yields four coordinates per box."""
    from models.sequence_generator import SequenceGenerator

    options = {"selected_cols": "0,4,2,3", "eval_acc": True,
               "eval_args": '{"beam": 2, "min_len": 4, "max_len_a": 0, "max_len_b": 4}'}
    task, model, sample = _task_model_sample("refcoco", tiny_data / "refcoco" / "valid.tsv", tmp_path, **options)
    args = Namespace(**json.loads(options["eval_args"]))
    unconstrained = SequenceGenerator([model], task.target_dictionary, beam_size=2, min_len=4, max_len_b=4)
    words = [t for hypos in unconstrained(sample) for t in hypos[0]["tokens"][:-1].tolist() if t not in task.vocab.bins]
    assert words, "the untrained model must write a non-bin token without the constraint"
    for zero_shot in (False, True):
        task.zero_shot = zero_shot
        generator = task.build_generator([model], args)
        for hypos in generator(sample):
            assert all(t in task.vocab.bins for t in hypos[0]["tokens"][:-1].tolist())
        results, hits = task.eval_step(generator, [model], sample)
        assert len(results) == len(hits) == 4 and all(min(r["box"]) >= 0 for r in results)


# the --best-checkpoint-metric of the original's run_scripts/*/train_*.sh
ORIGINAL_BEST_CHECKPOINT_METRICS = {
    "caption": "cider", "refcoco": "score", "snli_ve": "snli_score", "vqa_gen": "vqa_score", "image_classify": "score",
    "image_gen": "score", "gigaword": "rougeL_f1", "cola": "mcc", "mnli": "acc", "mrpc": "acc", "qnli": "acc",
    "qqp": "acc", "rte": "acc", "sst2": "acc",
}


def test_one_metric_name_per_task_as_the_original_scripts_select():
    import tasks  # noqa: F401
    from fairseq.tasks import TASK_REGISTRY

    assert {name: TASK_REGISTRY[name].metric_name for name in ORIGINAL_BEST_CHECKPOINT_METRICS} == \
        ORIGINAL_BEST_CHECKPOINT_METRICS


@pytest.mark.parametrize("task_name,folder,options", [
    ("gigaword", "gigaword", {"selected_cols": "0,1", "eval_rouge": True}),
    ("caption", "caption", {"selected_cols": "0,4,2", "eval_cider": True}),
])
def test_eval_print_samples_logs_an_example_per_validation_batch(tiny_data, tmp_path, caplog, task_name, folder,
                                                                 options):
    """--eval-print-samples (the original's gigaword script passes it) logs the first hypothesis and reference."""
    args = {**options, "eval_args": '{"beam": 2, "max_len_b": 8}'}
    with caplog.at_level("INFO", logger="tasks.ofa_task"):
        validate(task_name, tiny_data / folder / "valid.tsv", tmp_path, **args)
    assert "example hypothesis" not in caplog.text
    with caplog.at_level("INFO", logger="tasks.ofa_task"):
        validate(task_name, tiny_data / folder / "valid.tsv", tmp_path, eval_print_samples=True, **args)
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(":")[0] for line in lines if line.startswith("example ")] == \
        ["example hypothesis", "example reference"]
    assert all(len(line) > len("example reference: ") for line in lines if line.startswith("example reference"))


def _rewrite_rows(data, tmp_path, column, values):
    """A copy of ``data``'s first 4 rows whose ``column`` holds ``values[i]`` in row i (None: unchanged)."""
    rows = [line.split("\t") for line in data.read_text().splitlines()[:4]]
    for row, value in zip(rows, values):
        if value is not None:
            row[column] = value
    out = tmp_path / "rewritten.tsv"
    out.write_text("".join("\t".join(row) + "\n" for row in rows))
    return out


def _predictions(task_name, data, tmp_path, **options):
    task, model, sample = _task_model_sample(task_name, data, tmp_path, **options)
    generator = task.build_generator([model], Namespace(**json.loads(task.cfg.eval_args)))
    return task.eval_step(generator, [model], sample)[0]


@pytest.mark.parametrize("task_name,folder,options,metric,column,expected", [
    ("gigaword", "gigaword", {"selected_cols": "0,1", "eval_rouge": True,
                              "eval_args": '{"beam": 2, "max_len_b": 8}'}, "rougeL_f1", 1, 50.0),
    ("caption", "caption", {"selected_cols": "0,4,2", "eval_cider": True,
                            "eval_args": '{"beam": 2, "max_len_b": 8}'}, "cider", 2, None),
])
def test_validation_metric_counts_the_rows_that_match(tiny_data, tmp_path, task_name, folder, options, metric,
                                                      column, expected):
    """The untrained model scores 0 on these rows; with its own predictions as the references of rows 0 and 1,
    the metric must rise to exactly half the perfect score (a metric stuck at 0 fails). (RefCOCO's untrained boxes
    fall outside the image, so they cannot serve as references: its hits are pinned in test_metrics.py.)"""
    data = tiny_data / folder / "valid.tsv"
    assert validate(task_name, data, tmp_path, **options)[1][metric] == 0.0
    results = _predictions(task_name, data, tmp_path, **options)
    own = {"rougeL_f1": lambda r: r["hyp"], "cider": lambda r: r["caption"]}[metric]
    rewritten = _rewrite_rows(data, tmp_path, column, [own(results[0]), own(results[1]), None, None])
    log, values = validate(task_name, rewritten, tmp_path, **options)
    if expected is None:  # CIDEr-D of two exact matches among four rows: positive (its scale depends on the corpus)
        assert values[metric] > 0.5, values
    else:
        assert values[metric] == pytest.approx(expected, abs=1e-3), values


def test_glue_accuracy_counts_the_rows_that_match(tiny_data, tmp_path):
    """The untrained model says 1 on these four sst2 rows (all labelled 1): flipping two labels halves acc."""
    data = tiny_data / "glue" / "sst2" / "valid.tsv"
    assert validate("sst2", data, tmp_path, selected_cols="0,1")[1]["acc"] == 1.0
    values = validate("sst2", _rewrite_rows(data, tmp_path, 1, [None, None, "0", "0"]), tmp_path,
                      selected_cols="0,1")[1]
    assert values["acc"] == 0.5
