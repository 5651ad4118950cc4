"""A smoke run of each ``benchmarks/`` script at tiny sizes: it runs to the end and its own checks hold (the
timings themselves are not tested). In-process where the script measures in one process, as a command where it
starts its own processes."""
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
pytestmark = pytest.mark.slow


def run_in_process(script: str, *args: str, monkeypatch, capsys) -> str:
    import torch

    threads = torch.get_num_threads()  # the scripts set their own; the rest of the suite keeps its setting
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / script), *args])
    try:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def run_command(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def test_allcand_vqa(monkeypatch, capsys):
    out = run_in_process("allcand_vqa.py", "--answers", "20", "--questions", "2", "--valid-batch-size", "5",
                         "--image-size", "64", monkeypatch=monkeypatch, capsys=capsys)
    assert "2 questions x 20 answers" in out
    assert re.search(r"identical predictions: True; max score difference (\S+)", out), out
    assert float(re.search(r"max score difference (\S+)", out).group(1)) < 1e-4


@pytest.mark.parametrize("mode", [[], ["--classes", "10"]], ids=["caption", "classes"])
def test_generate(mode, monkeypatch, capsys):
    out = run_in_process("generate.py", "--batch-size", "2", "--beam", "2", "--max-len", "3", "--image-size", "64",
                         "--threads", "1", *mode, monkeypatch=monkeypatch, capsys=capsys)
    assert "identical hypotheses (all beams): True" in out, out
    if not mode:
        assert "full recompute" in out and "identical hypotheses: True" in out


def test_data_throughput(monkeypatch, capsys):
    out = run_in_process("data_throughput.py", "--rows", "8", "--batch-size", "4", "--patch-image-size", "64",
                         "--repeats", "1", "--image-size", "64x48", monkeypatch=monkeypatch, capsys=capsys)
    for line in ("naive (readlines + PIL)", "ours, 0 workers", "ours, 2 workers"):
        assert re.search(re.escape(line) + r"\s+\d+\.\d rows/s", out), out


def test_train_step():
    out = run_command("train_step.py", "--archs", "ofa_tiny", "--image-size", "64", "--batch-size", "1",
                      "--steps", "1", "--threads", "1")
    assert re.search(r"arch=ofa_tiny mode=fp32 params_M=\d+\.\d+ updates_per_s=\d", out), out


def test_amp_loss():
    out = run_command("amp_loss.py", "--updates", "2", "--batch-size", "2", "--image-size", "48")
    for name in ("training loss (last 10 updates)", "validation loss"):
        match = re.search(re.escape(name) + r"\s+fp32 (\d+\.\d+)\s+amp \(bf16\) (\d+\.\d+)", out)
        assert match and 0 < float(match.group(1)) and 0 < float(match.group(2)), out


def test_vs_original_needs_a_checkout(tmp_path):
    """The original's code is not in the repository (nor downloaded by tests): a missing checkout is one line."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / "vs_original.py"), "--original", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"--original {tmp_path}: no models/ofa/unify_transformer.py (expected a checkout of OFA-Sys/OFA)")
