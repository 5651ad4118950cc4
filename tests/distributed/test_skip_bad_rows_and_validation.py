"""``--skip-bad-rows`` and validation metrics with two gloo ranks, data parallel (caption, CIDEr-D) and fully
sharded (VQA, VQA score); RefCOCO accuracy on two ranks, stopped mid-epoch and resumed by one rank.

Each rank reads a contiguous half of the 24 training rows in batches of 4:

    rank 0: rows 0-3 (row 1 bad), 4-7 (row 5 bad), 8-11            -> 3, 3, 4 usable rows
    rank 1: rows 12-15, 16-19 (row 17 bad), 20-23 (all bad)         -> 4, 3, 0 usable rows

so bad rows sit on one rank only, on both, and one batch is all bad on rank 1 only. The 7 validation rows (one bad)
do not divide by the ranks; the multi-rank metric is checked against one process validating the same weights.
"""
import re

import pytest

from launch import head, logged, losses, run, train_command, validate_in_process, with_bad_rows

TRAIN_BAD = {1: "base64", 5: "bytes", 17: "empty", 20: "base64", 21: "bytes", 22: "empty", 23: "base64"}
VALID_BAD = {2: "bytes"}
GOOD_TRAIN_ROWS = 24 - len(TRAIN_BAD)
EPOCHS = 2
RUNS = {  # name: task, backend flags, task flags, validation metric
    "ddp": ("caption", ("--ddp-backend", "c10d", "--find-unused-parameters"),
            ("--eval-cider", "--eval-args", '{"beam":2,"max_len_b":6}'), "cider"),
    "fsdp": ("vqa_gen", ("--ddp-backend", "fully_sharded"), (), "vqa_score"),
}


def bad_files(tiny, task: str, folder) -> tuple:
    source = tiny["vqa" if task == "vqa_gen" else task]
    train = with_bad_rows(head(source["train"], 24, folder / "rows.tsv"), folder / "train.tsv", task, TRAIN_BAD)
    valid = with_bad_rows(head(source["valid"], 7, folder / "rows.tsv"), folder / "valid.tsv", task, VALID_BAD)
    return train, valid


@pytest.fixture(scope="module", params=list(RUNS))
def skip_run(request, tiny, tmp_path_factory):
    task, backend, task_flags, metric = RUNS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    train, valid = bad_files(tiny, task, folder)
    extra = ("--ans2label-file", str(tiny["vqa"]["ans2label"])) if task == "vqa_gen" else ()
    log = run(train_command(2, f"{train},{valid}", folder / "save", task, *backend, *task_flags, *extra,
                            "--batch-size", "4", "--max-epoch", str(EPOCHS), "--skip-bad-rows",
                            "--no-epoch-checkpoints", "--best-checkpoint-metric", metric,
                            "--maximize-best-checkpoint-metric"))
    return {"log": log, "train": train, "valid": valid, "save": folder / "save", "metric": metric,
            "name": request.param}


def test_bad_rows_are_counted_once_per_epoch_and_file_and_good_rows_all_train(skip_run):
    log, train = skip_run["log"], skip_run["train"]
    if skip_run["name"] == "fsdp":
        assert "fully sharded over 2 ranks" in log
    assert "done training" in log
    for epoch in range(1, EPOCHS + 1):
        # once (the master logs the union of both ranks' rows), and each bad row once
        assert log.count(f"epoch {epoch}: skipped 7 bad row(s) (--skip-bad-rows): {train}: 7\n") == 1, log[-3000:]
    assert log.count(f"validation on 'valid': skipped 1 bad row(s) (--skip-bad-rows): {skip_run['valid']}: 1") \
        == EPOCHS
    # every batch step is an update (rank 1's all-bad batch pairs with a usable batch of rank 0) and the updates
    # hold every usable row: none lost, none counted twice
    updates = losses(log)
    assert sorted(updates) == list(range(1, 3 * EPOCHS + 1))
    for epoch in range(1, EPOCHS + 1):
        assert sum(u["nsentences"] for u in updates.values() if u["epoch"] == epoch) == GOOD_TRAIN_ROWS
    assert "no usable row" not in log


def test_validation_metric_equals_one_process_on_the_same_weights(skip_run):
    """The 6 usable validation rows, 3 on each rank in one step: the loss (per target token) and the task metric
    (summed per rank, all-reduced) equal one process validating the final checkpoint in two steps of 3 rows.
    (fairseq logs nsentences per step: 6 against 3.)"""
    [*_, last] = logged(skip_run["log"], "valid")
    reference = validate_in_process(skip_run["save"] / "checkpoint_last.pt")
    metric = skip_run["metric"]
    assert last["valid_nsentences"] == 2 * reference["valid_nsentences"] == 6
    for name in ("valid_loss", "valid_nll_loss", f"valid_{metric}"):
        assert last[name] == reference[name], (name, last, reference)


@pytest.fixture(scope="module")
def refcoco_runs(tiny, tmp_path_factory):
    """RefCOCO on two ranks, 2 batches of 2 rows per rank and epoch, stopped after update 1 (mid-epoch, validated
    on 7 rows); then one rank (4 batches per epoch) resumes that checkpoint and finishes the epoch."""
    folder = tmp_path_factory.mktemp("refcoco")
    train = head(tiny["refcoco"]["train"], 8, folder / "train.tsv")
    valid = head(tiny["refcoco"]["valid"], 7, folder / "valid.tsv")
    flags = ("--batch-size", "2", "--max-epoch", "1", "--eval-acc",
             "--eval-args", '{"beam":2,"min_len":4,"max_len_a":0,"max_len_b":4}', "--best-checkpoint-metric", "score",
             "--maximize-best-checkpoint-metric", "--no-epoch-checkpoints", "--save-interval-updates", "1")
    data, save = f"{train},{valid}", folder / "save"
    two = run(train_command(2, data, save, "refcoco", "--find-unused-parameters", "--max-update", "1", *flags))
    reference = validate_in_process(save / "checkpoint_last.pt")
    one = run(train_command(1, data, save, "refcoco", *flags))
    return {"two": two, "one": one, "reference": reference, "save": save}


def test_refcoco_accuracy_of_two_ranks_equals_one_process(refcoco_runs):
    [valid] = logged(refcoco_runs["two"], "valid")
    reference = refcoco_runs["reference"]
    for name in ("valid_loss", "valid_score"):
        assert valid[name] == reference[name], (name, valid, reference)


def test_one_rank_resumes_a_two_rank_checkpoint_after_the_same_share_of_the_epoch(refcoco_runs):
    """Two ranks stopped after batch 1 of 2: one rank, with 4 batches per epoch, goes on after batch 2 and trains
    the epoch's last two batches (fairseq's position alone would resume after batch 1 and train three)."""
    one = refcoco_runs["one"]
    assert re.search(r"loaded checkpoint .*checkpoint_last\.pt \(epoch 1 @ 1 updates\)", one), one[-3000:]
    assert "stopped after batch 1 of 2 per rank in epoch 1; with 4 batches per rank here" in one
    assert "the epoch resumes after batch 2" in one
    updates = losses(one)
    assert sorted(updates) == [2, 3] and {u["epoch"] for u in updates.values()} == {1}
    assert {u["nsentences"] for u in updates.values()} == {2}
