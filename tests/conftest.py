"""Shared test setup: repository root on ``sys.path`` and the reference fixtures folder."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OFA_SHARED_REFERENCE", REPO.parent / "shared" / "reference"))

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def shared() -> Path:
    """Folder of the reference fixtures (``../shared/reference``)."""
    if not SHARED.is_dir():
        pytest.fail(f"reference fixtures not found at {SHARED}; clone the repo next to shared/ or set OFA_SHARED_REFERENCE")
    return SHARED
