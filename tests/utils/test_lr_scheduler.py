"""The override of fairseq's ``polynomial_decay`` is an explicit, logged call, not an import side effect."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
from fairseq.optim.lr_scheduler import LR_SCHEDULER_REGISTRY
from utils import lr_scheduler
print("after import:", LR_SCHEDULER_REGISTRY["polynomial_decay"].__name__)
lr_scheduler.use_polynomial_decay_with_warmup_ratio()
lr_scheduler.use_polynomial_decay_with_warmup_ratio()
print("after call:", LR_SCHEDULER_REGISTRY["polynomial_decay"].__name__)
"""


def test_polynomial_decay_override_is_explicit_and_logged_once():
    out = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    assert "after import: PolynomialDecayLRSchedule" in out
    assert "after call: PolynomialDecayWithWarmupRatio" in out
    assert out.count("--lr-scheduler polynomial_decay is OFA's PolynomialDecayWithWarmupRatio") == 1
