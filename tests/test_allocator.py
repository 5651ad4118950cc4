"""run_scripts/allocator.sh: jemalloc preloaded into the Python processes of run_scripts and the demo."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
JEMALLOC = [p for p in ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2")
            if os.path.exists(p)]
MAPS = "import sys; print(any('jemalloc' in line for line in open('/proc/self/maps')))"


def _python_under_allocator(**env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "OFA_ALLOCATOR")}
    script = f'source "{REPO}/run_scripts/allocator.sh"; "{sys.executable}" -c "{MAPS}"'
    return subprocess.run(["bash", "-c", script], env={**base, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not JEMALLOC, reason="libjemalloc2 is not installed (.ci/run installs it)")
def test_jemalloc_is_loaded_into_python():
    assert _python_under_allocator() == "True"


def test_system_allocator_and_an_existing_preload_are_kept():
    assert _python_under_allocator(OFA_ALLOCATOR="system") == "False"
    assert _python_under_allocator(LD_PRELOAD="") == ("True" if JEMALLOC else "False")
    libc = subprocess.run(["bash", "-c", f'source "{REPO}/run_scripts/allocator.sh"; echo "$LD_PRELOAD"'],
                          env={**os.environ, "LD_PRELOAD": "/nonexistent-but-kept.so"}, capture_output=True,
                          text=True).stdout.strip()
    assert libc == "/nonexistent-but-kept.so"
