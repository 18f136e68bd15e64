"""Every train/val/test split of the package, on one core: cut an order of indices into consecutive parts.

The order is a seeded permutation (`random_split`, `image_split`), a seeded permutation within each class
(`stratified_split`, `holdout`) or the natural order (`block_split`, `slice_blocks`: contiguous blocks, for EM slices
whose neighbours are near-duplicates). Each part comes back sorted.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

log = logging.getLogger(__name__)


def _cut(order: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """Consecutive pieces of `order` with the given sizes, each sorted."""
    bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
    return [order[bounds[k]:bounds[k + 1]].sort().values for k in range(len(sizes))]


def _cumulative_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Part sizes from rounded cumulative fractions; the last part takes the rest."""
    bounds = (torch.tensor([0.0, *fractions]).cumsum(0) * n).round().long().tolist()
    bounds[-1] = n
    return [bounds[k + 1] - bounds[k] for k in range(len(fractions))]


def stratified_split(labels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Indices for each fraction, stratified by label, reproducible from `seed` (fractions sum to 1)."""
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[] for _ in fractions]
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        for k, piece in enumerate(_cut(idx, _cumulative_sizes(len(idx), fractions))):
            parts[k].append(piece)
    return [torch.cat(p).sort().values for p in parts]


def holdout(labels: Tensor, val_size: int, seed: int, what: str) -> "tuple[Tensor, Optional[Tensor]]":
    """(train, val) indices with a stratified `val_size` validation part; val is None when `val_size` is 0."""
    if not 0 <= val_size < len(labels):
        raise ConfigError(f"data.val_size={val_size} must be in [0, {len(labels)}): the {what} training files "
                          f"hold {len(labels)} images")
    if val_size == 0:
        log.warning(f"data.val_size=0: validating on the {what} test split, so val metrics are not held out")
        return torch.arange(len(labels)), None
    frac = val_size / len(labels)
    train, val = stratified_split(labels, (1 - frac, frac), seed)
    return train, val


def held_out_sizes(n: int, fractions: Sequence[float], what: str) -> list[int]:
    """[rest, *max(1, round(n * f))]: at least one item in each held-out part and one left to train on."""
    if any(not 0 < f < 1 for f in fractions) or sum(fractions) >= 1:
        raise ConfigError(f"cannot split {n} {what} with fractions {list(fractions)}: use fractions in (0, 1) "
                          f"summing to less than 1")
    held = [max(1, round(n * f)) for f in fractions]
    if n - sum(held) < 1:
        raise ConfigError(f"no {what} left to train on from {n} with fractions {list(fractions)}: lower the "
                          f"fractions or add data")
    return [n - sum(held), *held]


def random_split(n: int, sizes: Sequence[int], seed: int) -> list[Tensor]:
    """Disjoint sorted index sets of the given sizes from a seeded permutation of range(n)."""
    return _cut(torch.randperm(n, generator=torch.Generator().manual_seed(seed)), sizes)


def block_split(n: int, sizes: Sequence[int]) -> list[Tensor]:
    """Contiguous blocks of range(n) of the given sizes, in order."""
    return _cut(torch.arange(n), sizes)


def image_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> "tuple[Tensor, Tensor, Tensor]":
    """(train, val, test) indices of n images from a seeded permutation; val and test hold at least one each."""
    train, val, test = random_split(n, held_out_sizes(n, (val_fraction, test_fraction), "images"), seed)
    return train, val, test


def slice_blocks(n: int, val_fraction: float, test_fraction: float, has_test: bool) -> dict[str, list[int]]:
    """Contiguous blocks of range(n): train first, then val, then (without a separate testing stack) test."""
    n_val = round(n * val_fraction)
    n_train = n - n_val if has_test else round(n * (1 - val_fraction - test_fraction))  # the rest, not rounded apart
    if not 0 < val_fraction < 1 or n_train < 1 or n_val < 1 or (not has_test and n - n_train - n_val < 1):
        raise ConfigError(f"{n} slices cannot be split into contiguous train/val{'' if has_test else '/test'} "
                          f"blocks with data.val_fraction={val_fraction}, data.test_fraction={test_fraction}: "
                          f"change the fractions or lower data.slice_step")
    sizes = [n_train, n_val] + ([] if has_test else [n - n_train - n_val])
    parts = block_split(n, sizes)
    return {k: p.tolist() for k, p in zip(("train", "val", "test"), parts)}
