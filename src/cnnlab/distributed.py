"""Data-parallel training under `torchrun --nproc_per_node=N -m cnnlab.train` (DDP): trainer.batch_size is the global
batch, of which rank r keeps samples r, r+N, ...; meters are summed over ranks, so the metrics equal one process's.
Only rank 0 writes logs, pictures, checkpoints and results, into the run folder it names."""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import ConfigError

log = logging.getLogger("cnnlab")


@dataclass(frozen=True)
class World:
    """This process's place: rank of world (world 1: an ordinary single process)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    stamp: str = ""  # the run folder's time, rank 0's, the same on every rank (cnnlab.rundir)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


WORLD = World()


def init() -> World:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA) and remember this rank."""
    global WORLD
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # no launcher set a world size above one
        return WORLD
    if not dist.is_initialized():
        # CPU tensors (the stop flag, trainer.device=cpu) go through gloo also where CUDA is: NCCL takes CUDA ones
        nccl = torch.cuda.is_available() and os.environ.get("CNNLAB_DIST_BACKEND") != "gloo"
        backend = "cpu:gloo,cuda:nccl" if nccl else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    stamp = [datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")]  # rank 0's: every rank writes into one folder
    dist.broadcast_object_list(stamp, src=0)
    WORLD = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), stamp[0])
    if WORLD.local_rank < torch.cuda.device_count():  # more ranks than GPUs: a CPU run's; device_for refuses CUDA
        torch.cuda.set_device(WORLD.local_rank)
    return WORLD


def device_for(requested: torch.device) -> torch.device:
    """Each rank on its own GPU (LOCAL_RANK) when training on CUDA."""
    if WORLD.active and requested.type == "cuda":
        count = torch.cuda.device_count()
        if WORLD.local_rank >= count:
            raise ConfigError(f"torchrun started rank {WORLD.local_rank} of this node, but the node has {count} "
                              f"GPU{'s' if count > 1 else ''}: start one process per GPU (--nproc_per_node={count}), "
                              f"or train on the CPU with trainer.device=cpu")
        return torch.device("cuda", WORLD.local_rank)
    return requested


def all_reduce_(tensors: list[Tensor]) -> None:
    """Sum each tensor over the ranks, in place (no-op for one process)."""
    if WORLD.active:
        for t in tensors:
            dist.all_reduce(t)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of a float over the ranks."""
    if not WORLD.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / WORLD.size


def any_rank(flag: bool, device: Optional[torch.device] = None) -> bool:
    """True on every rank when `flag` is true on any (e.g. a stop signal that reached one rank first)."""
    if not WORLD.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device or torch.device("cpu"))
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier() -> None:
    """Wait for every rank."""
    if WORLD.active:
        dist.barrier()


def wrap(model: torch.nn.Module, sync_bn: bool) -> "tuple[torch.nn.Module, Any]":
    """(the model to save, the network that trains: DDP around it, SyncBatchNorm if asked); alone: the model twice."""
    if not WORLD.active:
        return model, model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    if sync_bn and device.type != "cuda":  # DDP refuses SyncBatchNorm on CPU ("only work with GPU modules")
        log.info(f"trainer.sync_bn ignored: SyncBatchNorm runs on CUDA devices only (device is {device}); each rank "
                 f"normalises with its own batch statistics")
    elif sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shutdown() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()
