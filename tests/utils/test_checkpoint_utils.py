"""Checkpoint I/O: original-format checkpoints under weights-only loading, one-line errors, atomic saves."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from tasks.loading import load_model_ensemble_and_task
from utils import checkpoint_utils
from utils.checkpoint_utils import CheckpointError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def original_checkpoint(shared, tmp_path_factory) -> str:
    """The original ``train.py``'s caption checkpoint (``e2e_caption``), rebuilt to its ordinary format."""
    path = tmp_path_factory.mktemp("original") / "checkpoint.pt"
    subprocess.run([sys.executable, str(shared / "ckpt_pack.py"), "unpack",
                    str(shared / "e2e_caption" / "checkpoint.packed.pt"), str(path), str(shared / "rp_buckets.pt")],
                   check=True)
    return str(path)


@pytest.fixture(scope="module")
def caption_overrides(shared) -> dict:
    return {"data": str(shared / "e2e_caption" / "test.tsv"), "bpe_dir": str(REPO / "utils" / "BPE")}


def test_original_checkpoint_loads_weights_only(original_checkpoint):
    with pytest.raises(Exception, match="argparse.Namespace"):  # what stock loading does on torch >= 2.6
        torch.load(original_checkpoint, weights_only=True)
    state = checkpoint_utils.load_checkpoint_to_cpu(original_checkpoint)
    assert isinstance(state["cfg"], DictConfig)
    assert state["cfg"].task._name == "caption"
    assert isinstance(state["cfg"].model, argparse.Namespace) and state["cfg"].model.arch == "ofa_tiny"
    assert state["model"]["encoder.token_rp_bucket"].dtype == torch.int64
    assert state["optimizer_history"][-1]["num_updates"] == 300
    assert state["extra_state"]["train_iterator"]["epoch"] >= 1


def test_arg_overrides_reach_the_nested_namespace(original_checkpoint):
    state = checkpoint_utils.load_checkpoint_to_cpu(original_checkpoint, arg_overrides={"selected_cols": "1,4,2"})
    assert state["cfg"].task.selected_cols == "1,4,2"
    assert state["cfg"].model.selected_cols == "1,4,2"


def test_model_ensemble_and_task_from_original_checkpoint(original_checkpoint, caption_overrides):
    state = checkpoint_utils.load_checkpoint_to_cpu(original_checkpoint)
    models, cfg, task = load_model_ensemble_and_task([original_checkpoint],
                                                                      arg_overrides=caption_overrides)
    assert type(task).__name__ == "CaptionTask" and cfg.task.data == caption_overrides["data"]
    loaded = models[0].state_dict()
    assert set(loaded) == set(state["model"])
    for name, tensor in state["model"].items():
        assert torch.equal(loaded[name], tensor), name


def test_checkpoint_without_rp_buckets_loads(original_checkpoint, caption_overrides, tmp_path):
    """The bucket tables are computed, not learned: checkpoints that omit them still load strictly."""
    models, _, _ = load_model_ensemble_and_task([original_checkpoint],
                                                                 arg_overrides=caption_overrides)
    state = checkpoint_utils.torch_load_safely(original_checkpoint)
    expected = {k: v for k, v in state["model"].items() if k.endswith("rp_bucket")}
    state["model"] = {k: v for k, v in state["model"].items() if not k.endswith("rp_bucket")}
    path = tmp_path / "no_buckets.pt"
    torch.save(state, path)
    reloaded, _, _ = load_model_ensemble_and_task([str(path)], arg_overrides=caption_overrides)
    for name, table in expected.items():
        assert torch.equal(reloaded[0].state_dict()[name], table), name


def test_models_take_the_checkpoint_tensors(original_checkpoint, caption_overrides, tmp_path):
    """The model holds the checkpoint's tensors (ties kept), also from a checkpoint without the encoder's version
    buffer, which old checkpoints miss."""
    from itertools import chain

    state = checkpoint_utils.torch_load_safely(original_checkpoint)
    for path in (original_checkpoint, tmp_path / "no_version.pt"):
        if path != original_checkpoint:
            del state["model"]["encoder.version"]
            torch.save(state, path)
        model = load_model_ensemble_and_task([str(path)], arg_overrides=caption_overrides)[0][0]
        assert not any(t.is_meta for t in chain(model.parameters(), model.buffers()))
        assert model.decoder.output_projection.weight is model.encoder.embed_tokens.weight
        assert model.encoder.version.tolist() == [3]
        loaded = model.state_dict()
        for name, tensor in state["model"].items():
            assert torch.equal(loaded[name], tensor), name


def test_other_architecture_is_one_line_naming_file_and_key(original_checkpoint, caption_overrides, tmp_path):
    models, _, _ = load_model_ensemble_and_task([original_checkpoint],
                                                                 arg_overrides=caption_overrides)
    state = checkpoint_utils.load_checkpoint_to_cpu(original_checkpoint)
    weights = dict(state["model"])
    weights["decoder.layers.0.fc1.weight"] = weights["decoder.layers.0.fc1.weight"][:, :3].clone()
    with pytest.raises(CheckpointError) as err:
        checkpoint_utils.load_model_state(models[0], weights, "other_arch.pt")
    message = str(err.value)
    assert "\n" not in message and "other_arch.pt" in message and "decoder.layers.0.fc1.weight" in message
    assert "(64, 3)" in message

    del weights["decoder.layers.0.fc1.weight"]
    with pytest.raises(CheckpointError, match="decoder.layers.0.fc1.weight missing"):
        checkpoint_utils.load_model_state(models[0], weights, "other_arch.pt")


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_disallowed_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "created_by_unpickling"
    path = tmp_path / "malicious.pt"
    torch.save({"model": {}, "payload": _RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(CheckpointError) as err:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    message = str(err.value)
    assert "refusing to load" in message and "open" in message and str(path) in message
    assert "weights_only=False" not in message and "\n" not in message
    assert not marker.exists()


def test_truncated_and_foreign_files_are_one_line_errors(original_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(open(original_checkpoint, "rb").read()[: 1 << 20])
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    not_fairseq = tmp_path / "plain_state_dict.pt"
    torch.save({"weight": torch.zeros(2)}, not_fairseq)
    for path, expected in ((truncated, "truncated or corrupt"), (text, "corrupt"), (not_fairseq, "no 'model' entry")):
        with pytest.raises(CheckpointError) as err:
            checkpoint_utils.load_checkpoint_to_cpu(str(path))
        assert str(path) in str(err.value) and expected in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "missing.pt"))


class _FailsWhilePickling:
    def __reduce__(self):
        raise RuntimeError("disk full")


def test_save_is_atomic(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    checkpoint_utils.save_checkpoint_file({"model": {"w": torch.ones(3)}}, str(path))
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint_utils.save_checkpoint_file({"model": {"w": torch.zeros(3)}, "bad": _FailsWhilePickling()},
                                              str(path))
    assert torch.equal(checkpoint_utils.torch_load_safely(str(path))["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["checkpoint_last.pt"]

    copy = tmp_path / "checkpoint_best.pt"
    checkpoint_utils.copy_checkpoint_file(str(path), str(copy))
    assert copy.read_bytes() == path.read_bytes()


def test_numpy_scalars_of_numpy_1_and_2_checkpoints_load(tmp_path):
    """Meters may hold numpy scalars; numpy 1.x pickled them under ``numpy.core``."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    torch.save({"model": {}, "meter": np.float64(1.5), "count": np.int64(3)}, buffer,
               _use_new_zipfile_serialization=False)
    for name, data in (("numpy2.pt", buffer.getvalue()),
                       ("numpy1.pt", buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))):
        (tmp_path / name).write_bytes(data)
        state = checkpoint_utils.torch_load_safely(str(tmp_path / name))
        assert state["meter"] == 1.5 and state["count"] == 3
