"""Data shared by the multi-rank tests: the tiny benchmark's caption, VQA and RefCOCO files, written once."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict:
    """``{"caption"|"vqa"|"refcoco": {"train"|"valid"|...: path}}`` of ``dataset/make_tiny_dataset.py``."""
    from dataset.make_tiny_dataset import make_tiny_dataset

    folder = tmp_path_factory.mktemp("tiny")
    files = make_tiny_dataset(str(folder), seed=0, tasks=["caption", "vqa", "refcoco"], image_size=48)
    return {task: {split: Path(path) for split, path in paths.items()} for task, paths in files.items()}

