"""The README's main command, shortened: one task, a few dozen updates; the finetuned model must beat the untrained one."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_scripts/demo.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900)


def test_demo_learns_vqa_quietly_and_draws(tmp_path):
    out = tmp_path / "demo"
    args = ["--tasks", "vqa", "--max-update", "24", "--output", str(out), "--data", str(tmp_path / "tiny")]
    proc = _demo(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "untrained" in proc.stdout and "finetuned" in proc.stdout
    metrics = {name: json.loads((out / "results" / "vqa" / name / "test_metrics.json").read_text())["vqa_score"]
               for name in ("untrained", "trained")}
    assert metrics["trained"] > metrics["untrained"] + 0.1, metrics
    assert (out / "vqa" / "checkpoint_last.pt").is_file()
    assert any((out / "tensorboard" / "vqa").rglob("events.out.tfevents.*"))
    # quiet: stage lines and commands on the console, everything else in the logs it names
    assert len(proc.stdout.splitlines()) < 30, proc.stdout
    assert "Warning" not in proc.stdout + proc.stderr and "Please install" not in proc.stdout + proc.stderr
    assert f"(log: {out / 'logs' / 'vqa_train.log'})" in proc.stdout and "$ " in proc.stdout
    assert "num_updates" in (out / "logs" / "vqa_train.log").read_text()
    with Image.open(out / "demo.png") as png:
        assert png.width > 4 * 96 and png.height > 96

    again = _demo(*args)  # the same --output again: no silent resume
    assert again.returncode != 0 and "--resume continues it, --overwrite starts over" in again.stderr
