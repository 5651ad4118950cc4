"""Shared test setup: repository root on ``sys.path``, the reference fixtures, TSV files and tasks."""
import base64
import json
import os
import sys
from io import BytesIO
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OFA_SHARED_REFERENCE", REPO.parent / "shared" / "reference"))

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# the run_scripts the tests launch use this interpreter's environment: setup_env.sh never installs a venv for them
os.environ.setdefault("OFA_VENV", sys.prefix)


@pytest.fixture(scope="session")
def shared() -> Path:
    """Folder of the reference fixtures (``../shared/reference``)."""
    if not SHARED.is_dir():
        pytest.fail(f"reference fixtures not found at {SHARED}; clone the repo next to shared/ or set OFA_SHARED_REFERENCE")
    return SHARED


def image_base64(size=(64, 48), color=(200, 30, 30), mode="RGB", format="PNG", urlsafe=True) -> str:
    """A solid image encoded as the TSV files store it."""
    buffer = BytesIO()
    Image.new(mode, size, color if mode != "L" else color[0]).save(buffer, format=format)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(buffer.getvalue()).decode("ascii")


@pytest.fixture
def b64_image():
    """The :func:`image_base64` helper."""
    return image_base64


@pytest.fixture
def write_tsv(tmp_path):
    """write_tsv(rows, name) -> path of a TSV file holding ``rows`` (lists of columns)."""
    def write(rows, name="data.tsv"):
        path = tmp_path / name
        path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")
        return str(path)
    return write


@pytest.fixture
def make_task(write_tsv):
    """make_task(name, rows, **options) -> (task, dataset): the task from fairseq's registry, ``valid`` loaded."""
    import tasks  # noqa: F401  (registers the OFA tasks)
    from fairseq.tasks import setup_task

    def make(name, rows, split="valid", **options):
        path = write_tsv(rows)
        options = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in options.items()}
        task = setup_task(OmegaConf.create({"_name": name, "data": f"{path},{path}", **options}))
        task.load_dataset(split)
        return task, task.datasets[split]
    return make


@pytest.fixture(scope="module")
def module_tmp_dir(tmp_path_factory):
    """module_tmp_dir(name) -> a new folder, deleted once the module's tests are done (tmp_path_factory's folders
    live to the session's end, and stay when a test failed): for the module fixtures' training runs."""
    import shutil

    made = []

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def e2e_caption_checkpoint(tmp_path_factory, shared) -> Path:
    """The original's caption checkpoint of ``e2e_caption/`` (original format), unpacked once per session."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ckpt_pack", shared / "ckpt_pack.py")
    ckpt_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt_pack)
    path = tmp_path_factory.mktemp("e2e_caption") / "checkpoint.pt"
    ckpt_pack.unpack(str(shared / "e2e_caption" / "checkpoint.packed.pt"), str(path), str(shared / "rp_buckets.pt"))
    return path


@pytest.fixture(scope="session")
def tiny_task_checkpoint(tmp_path_factory, shared, e2e_caption_checkpoint):
    """tiny_task_checkpoint(task_name, seed=0) -> (checkpoint, data, task_cfg): the e2e model's config with fresh
    random weights for ``task_name`` and its four ``data_parity.pt`` rows as ``test.tsv``; one per (task, seed) a
    session, shared by the evaluate, predict and port tests (read-only: copy before changing). Deleted at the end."""
    import shutil

    import torch
    from test_evaluate import _make_tiny_checkpoint, _tiny_task_files

    data_parity = torch.load(shared / "data_parity.pt", weights_only=True)
    root = tmp_path_factory.mktemp("tiny_task_checkpoints")
    made = {}

    def make(task_name: str, seed: int = 0):
        if (task_name, seed) not in made:
            folder = root / f"{task_name}_{seed}"
            folder.mkdir()
            data, task_cfg = _tiny_task_files(data_parity, task_name, folder)
            _make_tiny_checkpoint(e2e_caption_checkpoint, task_name, task_cfg, folder / "checkpoint.pt", seed=seed)
            made[task_name, seed] = folder / "checkpoint.pt", data, task_cfg
        return made[task_name, seed]

    yield make
    shutil.rmtree(root, ignore_errors=True)
