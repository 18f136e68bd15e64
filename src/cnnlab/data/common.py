"""What every dataset builder returns, and the on-device batch loader for data that fits in memory."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

# On-device augmentation of prepared training batches; targets go through too (masks are cropped with their images).
Augment = Callable[[Tensor, Tensor, torch.Generator], "tuple[Tensor, Tensor]"]
# Stored batch -> model-ready batch, e.g. uint8 images -> normalised float, uint8 masks -> long, token ids trimmed.
Prepare = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor]"]


@dataclass
class TensorSplit:
    """An in-memory split: `inputs[i]` belongs with `targets[i]`, stored compactly (uint8 pixels, int32 token ids)."""

    inputs: Tensor   # e.g. uint8 [N,C,H,W] images, float [N,D] features, int32 [N,L] padded token ids
    targets: Tensor  # e.g. long [N] class labels, uint8 [N,H,W] masks
    prepare: Optional[Prepare] = None  # applied per batch by every loader: the whole split never exists in float

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"inputs ({len(self.inputs)}) and targets ({len(self.targets)}) differ in length")

    def __len__(self) -> int:
        return len(self.inputs)

    def batch(self, index: "Tensor | slice") -> "tuple[Tensor, Tensor]":
        """The prepared batch at `index` (a slice or an index tensor)."""
        x, y = self.inputs[index], self.targets[index]
        return self.prepare(x, y) if self.prepare is not None else (x, y)


Split = Union[TensorSplit, Dataset]


@dataclass
class DataBundle:
    """Train/val/test splits plus the dataset-dependent values that `run.py` hands to the model."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str]
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"in_channels": 1}; num_classes is added by run.py
    train_augment: Optional[Augment] = None           # used for TensorSplit training data only
    task: str = "classification"                       # or "segmentation"
    mean: tuple[float, ...] = ()                        # per-channel statistics used to normalise (for pictures)
    std: tuple[float, ...] = ()
    name: str = ""
    state: dict = field(default_factory=dict)          # raw input -> model input, in checkpoints: size, vocabulary

    def data_state(self) -> dict:
        """What a checkpoint stores so that eval/viz/predict need nothing but it and the inputs."""
        # tensors offered to the model (e.g. embeddings) live in the weights: only their shapes are stored
        offered = {k: v for k, v in self.model_kwargs.items() if not isinstance(v, Tensor) and v is not None}
        shapes = {k: list(v.shape) for k, v in self.model_kwargs.items() if isinstance(v, Tensor)}
        return {"task": self.task, "num_classes": self.num_classes, "class_names": list(self.class_names),
                "mean": list(self.mean), "std": list(self.std), "name": self.name, "model_kwargs": offered,
                "model_tensors": shapes, **self.state}


def offered_from_state(state: dict) -> dict:
    """What the training data offered the model, from a checkpoint's data state (tensors as zeros: weights follow)."""
    return {**state.get("model_kwargs", {}),
            **{k: torch.zeros(shape) for k, shape in state.get("model_tensors", {}).items()}}


class TensorLoader:
    """Batches a TensorSplit that already lives on the training device; shuffles with `torch.randperm` there."""
    # The generator is the whole random state (shuffle order, augmentation): checkpointing it makes a resume exact.
    # shard=(rank, world): every rank cuts and augments the same global batch and keeps samples rank, rank + world, ...

    def __init__(self, split: TensorSplit, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 augment: Optional[Augment] = None, generator: Optional[torch.Generator] = None,
                 shard: "tuple[int, int]" = (0, 1)) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split, self.batch_size, self.shuffle, self.drop_last = split, batch_size, shuffle, drop_last
        self.augment, self.rank, self.world = augment, shard[0], shard[1]
        self.generator = generator or torch.Generator(device=split.inputs.device)

    def __len__(self) -> int:
        n = len(self.split)
        full, rest = divmod(n, self.batch_size)
        small = self.world > 1 and self.shuffle and 0 < rest < self.world  # too small to give every rank a sample
        return full if self.drop_last or small else full + (rest > 0)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.batches()

    def batches(self, skip: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The epoch's batches from batch `skip` on; skipped ones still draw their augmentation (exact resume)."""
        n, device = len(self.split), self.split.inputs.device
        order = torch.randperm(n, generator=self.generator, device=device) if self.shuffle else None
        for b in range(len(self)):
            if b < skip and self.augment is None:
                continue  # nothing random happens in this batch
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            x, y = self.split.batch(slice(lo, hi) if order is None else order[lo:hi])
            if self.augment is not None:
                x, y = self.augment(x, y, self.generator)
            if b >= skip:
                yield (x, y) if self.world == 1 else (x[self.rank::self.world], y[self.rank::self.world])


def head(split: Split, n: int) -> "tuple[Tensor, Tensor]":
    """The first `n` prepared (inputs, targets) of a split (a TensorSplit is sliced, a Dataset indexed)."""
    if isinstance(split, TensorSplit):
        return split.batch(slice(0, n))
    items = [split[i] for i in range(min(n, len(split)))]
    x, y = torch.stack([torch.as_tensor(x) for x, _ in items]), torch.tensor([int(y) for _, y in items])
    prepare = getattr(split, "prepare", None)
    return prepare(x, y) if prepare is not None else (x, y)


class DeviceLoader:
    """A DataLoader whose batches are moved to the device and prepared there, so that workers hand over compact ones."""

    def __init__(self, loader: DataLoader, device: torch.device, prepare: Callable) -> None:
        self.loader, self.device, self.prepare = loader, device, prepare
        self.generator, self.sampler = loader.generator, loader.sampler

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.loader:
            yield self.prepare(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))


def make_loader(split: Split, batch_size: int, shuffle: bool, device: torch.device, *,
                augment: Optional[Augment] = None, seed: int = 0, drop_last: bool = False,
                num_workers: int = 0, shard: "tuple[int, int]" = (0, 1)) -> Union[TensorLoader, DataLoader]:
    """TensorLoader (data moved to `device` once) for a TensorSplit; a worker DataLoader for anything else."""
    # batch_size is the global batch: from disk, a DistributedSampler with batch_size // world per rank trains
    if isinstance(split, TensorSplit):
        gen = torch.Generator(device=device).manual_seed(seed)
        split = TensorSplit(split.inputs.to(device), split.targets.to(device), split.prepare)  # no copy if there
        return TensorLoader(split, batch_size, shuffle, drop_last, augment, gen, shard)
    gen = torch.Generator().manual_seed(seed)
    rank, world = shard
    common = dict(num_workers=num_workers, pin_memory=device.type == "cuda",
                  persistent_workers=False)  # workers re-seeded from `gen` each epoch: resume stays exact
    prepare = getattr(split, "prepare", None)
    if world > 1 and shuffle:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(split, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        loader = DataLoader(split, batch_size=max(1, batch_size // world), sampler=sampler, drop_last=drop_last,
                            generator=gen, **common)
    else:
        data = Subset(split, range(rank, len(split), world)) if world > 1 else split
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=gen,
                            **common)
    return DeviceLoader(loader, device, prepare) if prepare is not None else loader


def channel_stats(images: Tensor) -> "tuple[tuple[float, ...], tuple[float, ...]]":
    """Per-channel mean and std of [N,C,H,W] images in [0,1] units (uint8 images are divided by 255)."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    if images.dtype == torch.uint8:
        x = x / 255
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def _stats_view(mean: "tuple[float, ...]", std: "tuple[float, ...]", like: Tensor) -> "tuple[Tensor, Tensor]":
    return tuple(torch.tensor(v, dtype=like.dtype, device=like.device).view(-1, 1, 1) for v in (mean, std))


def normalise(x: Tensor, mean: "tuple[float, ...]", std: "tuple[float, ...]") -> Tensor:
    """(x - mean) / std per channel of an [N,C,H,W] (or [C,H,W]) float tensor."""
    m, s = _stats_view(mean, std, x)
    return (x - m) / s


def unnormalise(x: Tensor, mean: "tuple[float, ...]", std: "tuple[float, ...]") -> Tensor:
    """x * std + mean per channel: back to [0,1] pixel units."""
    m, s = _stats_view(mean, std, x)
    return x * s + m
