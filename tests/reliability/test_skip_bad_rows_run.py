"""A real tiny training run with --skip-bad-rows: a batch of bad rows only is a no-op, totals are exact."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
BATCH_SIZE = 4


def _write(path: Path, lines: list, bad: set) -> str:
    # a bad row keeps its columns but its image is not base64
    rows = [line.rstrip("\n").split("\t") for line in lines]
    for i in bad:
        rows[i][4] = "not*base64"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return str(path)


@pytest.mark.slow
def test_all_bad_batches_are_no_ops_and_totals_are_per_epoch_and_file(tmp_path):
    from dataset.make_tiny_dataset import make_tiny_dataset

    files = make_tiny_dataset(str(tmp_path / "tiny"), seed=0, tasks=["caption"], image_size=48)["caption"]
    lines = Path(files["train"]).read_text().splitlines(keepends=True)
    valid_lines = Path(files["valid"]).read_text().splitlines(keepends=True)
    train1 = _write(tmp_path / "train1.tsv", lines[:12], bad={0, 1, 2, 3, 9})  # the whole first batch is bad
    train2 = _write(tmp_path / "train2.tsv", lines[12:24], bad={5})
    valid = _write(tmp_path / "valid.tsv", valid_lines[:8], bad={0, 1, 2, 3})  # first valid batch too
    result = subprocess.run([
        sys.executable, str(REPO / "train.py"), f"{train1},{train2},{valid}", "--user-dir", str(REPO),
        "--task", "caption", "--arch", "ofa_tiny", "--criterion", "adjust_label_smoothed_cross_entropy",
        "--optimizer", "adam", "--lr", "1e-3", "--max-epoch", "2", "--batch-size", str(BATCH_SIZE),
        "--selected-cols", "0,4,2", "--patch-image-size", "32", "--max-src-length", "20", "--max-tgt-length", "12",
        "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
        "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2", "--resnet-type", "resnet18", "--num-workers", "1", "--cpu",
        "--log-format", "json", "--log-interval", "1",
        "--no-save", "--skip-bad-rows",
    ], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "Invalid dummy batch" not in log
    # totals: each bad row once (the first batch is read twice by fairseq, rows are read in a worker process)
    assert f"epoch 1: skipped 5 bad row(s) (--skip-bad-rows): {train1}: 5" in log
    assert f"epoch 2: skipped 1 bad row(s) (--skip-bad-rows): {train2}: 1" in log
    assert log.count(f"validation on 'valid': skipped 4 bad row(s) (--skip-bad-rows): {valid}: 4") == 2
    assert "no usable row in this update's batches on any rank (--skip-bad-rows): no update" in log
    # epoch 1: the batches with 4 and 3 good rows update, the one without any does not; epoch 2: 4, 3, 4 rows
    updates = [json.loads(line.split("| train_inner | ", 1)[1]) for line in result.stdout.splitlines()
               if "| train_inner |" in line]
    assert [int(u["num_updates"]) for u in updates] == [1, 2, 3, 4, 5]
    sentences = {epoch: sorted(int(float(u["nsentences"])) for u in updates if int(u["epoch"]) == epoch)
                 for epoch in (1, 2)}
    assert sentences == {1: [3, 4], 2: [3, 4, 4]}
    # validation saw the 4 good rows only
    valid_stats = [json.loads(line.split("| valid | ", 1)[1]) for line in result.stdout.splitlines()
                   if "| valid |" in line]
    assert [int(float(v["valid_nsentences"])) for v in valid_stats] == [4, 4]
