"""``configure_torchrun``: the one torchrun setup of train.py and evaluate.py."""
import pytest
from omegaconf import OmegaConf

from utils.distributed import configure_torchrun


def cfg(backend="nccl", init_method=None):
    return OmegaConf.create({"common": {"cpu": True}, "distributed_training": {
        "distributed_init_method": init_method, "distributed_world_size": 1, "distributed_rank": 0, "device_id": 0,
        "distributed_no_spawn": False, "distributed_backend": backend}})


def test_torchrun_environment_sets_rank_world_size_and_gloo_on_cpu(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    config = cfg()
    configure_torchrun(config)
    dist = config.distributed_training
    assert (dist.distributed_init_method, dist.distributed_world_size, dist.distributed_rank) == ("env://", 2, 1)
    assert dist.distributed_no_spawn and dist.distributed_backend == "gloo"
    assert dist.device_id == 0  # LOCAL_RANK picks a GPU; on CPU there is none


@pytest.mark.parametrize("env, backend, init_method", [
    ({}, "nccl", None),  # one process, not under torchrun: fairseq's defaults stay, nccl becomes gloo only on CPU
    ({"WORLD_SIZE": "2", "RANK": "0"}, "mpi", "tcp://host:1"),  # an explicit init method and backend are kept
])
def test_explicit_settings_are_kept(monkeypatch, env, backend, init_method):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = cfg(backend, init_method)
    configure_torchrun(config)
    dist = config.distributed_training
    assert dist.distributed_init_method == init_method and dist.distributed_world_size == 1
    assert dist.distributed_backend == ("gloo" if backend == "nccl" else backend)
