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
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: asked.setdefault("device", index))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, timeout: asked.update(backend=backend))
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed, "WORLD", distributed.World())
    world = distributed.init()
    assert world == distributed.World(1, 2, 1) and asked["device"] == 1
    backends = dict(part.split(":") for part in asked["backend"].split(","))
    assert backends == {"cpu": "gloo", "cuda": "nccl"}
    monkeypatch.setenv("CNNLAB_DIST_BACKEND", "gloo")
    distributed.init()
    assert asked["backend"] == "gloo"

