"""The README's main command, shortened: one task, a few dozen updates; the finetuned model must beat the untrained one."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_learns_vqa(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "run_scripts/demo.py", "--tasks", "vqa", "--max-update", "24", "--minutes", "3",
         "--output", str(out), "--data", str(tmp_path / "tiny"), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "untrained" in proc.stdout and "finetuned" in proc.stdout
    metrics = {name: json.loads((out / "results" / "vqa" / name / "test_metrics.json").read_text())["vqa_score"]
               for name in ("untrained", "trained")}
    assert metrics["trained"] > metrics["untrained"] + 0.1, metrics
    assert (out / "vqa" / "checkpoint_last.pt").is_file()
    assert any((out / "tensorboard" / "vqa").rglob("events.out.tfevents.*"))
