"""The process group and the DDP wrapper as set up where this machine cannot run them (a GPU machine, a CPU run
asking for SyncBatchNorm): what is asked of torch.distributed, checked without starting ranks."""
import logging

import pytest
import torch
from torch import nn

from cnnlab import distributed


def test_cuda_machines_reduce_cpu_tensors_with_gloo(monkeypatch):
    # on a GPU machine a trainer.device=cpu run all-reduces CPU tensors, which NCCL cannot: CPU goes to gloo
    asked = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.delenv("CNNLAB_DIST_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: asked.setdefault("device", index))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, timeout: asked.update(backend=backend))
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)

    def broadcast(objects, src):  # rank 0's time stamp arrives
        assert src == 0
        objects[0] = "rank-0-time"

    monkeypatch.setattr(distributed.dist, "broadcast_object_list", broadcast)
    monkeypatch.setattr(distributed, "WORLD", distributed.World())
    world = distributed.init()
    assert world == distributed.World(1, 2, 1, "rank-0-time") and asked["device"] == 1
    backends = dict(part.split(":") for part in asked["backend"].split(","))
    assert backends == {"cpu": "gloo", "cuda": "nccl"}
    monkeypatch.setenv("CNNLAB_DIST_BACKEND", "gloo")
    distributed.init()
    assert asked["backend"] == "gloo"


def test_sync_bn_on_cpu_ranks_is_ignored_with_a_notice(monkeypatch, caplog):
    # DDP refuses SyncBatchNorm on CPU ("SyncBatchNorm layers only work with GPU modules"): the run keeps plain
    # batch norms and says so, instead of a traceback on every rank
    monkeypatch.setattr(distributed, "WORLD", distributed.World(0, 2, 0))
    made = {}

    class FakeDDP(nn.Module):
        def __init__(self, module, device_ids=None):
            super().__init__()
            made.update(module=module, device_ids=device_ids)

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", FakeDDP)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        kept, ddp = distributed.wrap(model, sync_bn=True)
    assert kept is model and isinstance(ddp, FakeDDP) and made["device_ids"] is None
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in kept.modules())
    assert any("trainer.sync_bn ignored" in r.message for r in caplog.records)


def test_more_ranks_than_gpus_train_on_the_cpu_but_refuse_cuda_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(distributed, "WORLD", distributed.World(3, 4, 3))  # a 4th process on a node with 2 GPUs
    assert distributed.device_for(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(distributed.ConfigError, match=r"^torchrun started rank 3 of this node, but the node has 2 "
                                                      r"GPUs: start one process per GPU \(--nproc_per_node=2\)"):
        distributed.device_for(torch.device("cuda"))
    monkeypatch.setattr(distributed, "WORLD", distributed.World(1, 4, 1))
    assert distributed.device_for(torch.device("cuda")) == torch.device("cuda", 1)
