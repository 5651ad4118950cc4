"""Distributed ``evaluate.py``, the route of ``evaluate_vqa_allcand_distributed.sh``: two gloo ranks score every
candidate answer of 5 VQA rows (3 + 2 per rank) and write what one process writes, no row lost or repeated."""
import json
import sys
from pathlib import Path

import torch

from launch import REPO, launcher, run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: test_evaluate's tiny checkpoint helpers
from test_evaluate import _make_tiny_checkpoint, _overrides, _tiny_task_files  # noqa: E402


def test_two_ranks_write_the_predictions_and_metrics_of_one_process(e2e_caption_checkpoint, shared, tmp_path):
    import evaluate

    data_parity = torch.load(shared / "data_parity.pt", weights_only=True)
    data, task_cfg = _tiny_task_files(data_parity, "vqa_gen", tmp_path)
    rows = data.read_text().splitlines()
    data.write_text("\n".join([*rows, "25" + rows[0][2:]]) + "\n")  # a fifth row, question id 25
    checkpoint = tmp_path / "vqa.pt"
    _make_tiny_checkpoint(e2e_caption_checkpoint, "vqa_gen", task_cfg, checkpoint)

    def args(results: Path) -> list:
        return [str(data), f"--path={checkpoint}", "--task=vqa_gen", "--batch-size=2", "--seed=7", "--cpu",
                "--num-workers=0", "--gen-subset=test", f"--results-path={results}", "--no-progress-bar",
                f"--model-overrides={_overrides(data=str(data), bpe_dir=str(REPO / 'utils' / 'BPE'))}"]

    evaluate.cli_main(args(tmp_path / "one"))
    run([*launcher(2), str(REPO / "evaluate.py"), *args(tmp_path / "two")])
    one, two = ({name: json.loads((tmp_path / folder / f"test_{name}.json").read_text())
                 for name in ("predict", "metrics")} for folder in ("one", "two"))
    assert [p["question_id"] for p in two["predict"]] == [21, 22, 23, 24, 25]
    assert two["predict"] == one["predict"]
    assert two["metrics"] == one["metrics"] and two["metrics"]["num_samples"] == 5
