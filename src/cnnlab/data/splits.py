"""Every train/val/test split of the package, on one core: cut an order of indices into consecutive sorted parts.

The order is a seeded permutation (overall or within each class) or the natural one (contiguous EM slice blocks)."""
from __future__ import annotations

import itertools
import logging
import math
from fractions import Fraction
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

log = logging.getLogger(__name__)


def _cut(order: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """Consecutive pieces of `order` with the given sizes, each sorted."""
    return [part.sort().values for part in order.split(list(sizes))]


def _apportion(total: int, quotas: Sequence, low: Sequence[int], high: Sequence[int],
               ties: Sequence[int]) -> list[int]:
    """Whole numbers near `quotas` that sum to `total`, each within [low, high], by largest remainder (ties: `ties`)."""
    counts = [min(max(math.floor(q), lo), hi) for q, lo, hi in zip(quotas, low, high)]
    while sum(counts) != total:
        step = 1 if sum(counts) < total else -1
        free = [i for i in ties if low[i] <= counts[i] + step <= high[i]]
        counts[max(free, key=lambda i: step * (quotas[i] - counts[i]))] += step  # max: the first of equals
    return counts


def stratified_split(labels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Indices for each fraction (summing to 1), stratified by label, reproducible from `seed`."""
    n, k = len(labels), len(fractions)
    quotas = [n * Fraction(str(f)) for f in fractions]  # as written (0.1 is 1/10): equal remainders are equal
    return stratified_parts(labels, _apportion(n, quotas, [0] * k, [n] * k, range(k)), seed)


def stratified_parts(labels: Tensor, sizes: Sequence[int], seed: int) -> list[Tensor]:
    """Indices of parts of exactly `sizes`, each holding each class's share to within one sample, from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    members = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        members.append(idx[torch.randperm(len(idx), generator=gen)])
    ties = torch.randperm(len(members), generator=gen).tolist()  # equal remainders: a seeded order of classes
    n, counts = len(labels), [len(m) for m in members]
    cuts = [[0] * len(members)]  # per class: how many of its samples the parts so far hold (largest remainder)
    for boundary in itertools.accumulate(sizes[:-1]):
        quotas = [Fraction(count * boundary, n) for count in counts]
        cuts.append(_apportion(boundary, quotas, cuts[-1], counts, ties))
    cuts.append(counts)
    return [torch.cat([m[a:b] for m, a, b in zip(members, lo, hi)]).sort().values for lo, hi in zip(cuts, cuts[1:])]


def holdout(labels: Tensor, val_size: int, seed: int, what: str) -> "tuple[Tensor, Optional[Tensor]]":
    """(train, val) indices with a stratified validation part of exactly `val_size`; val is None when it is 0."""
    if not 0 <= val_size < len(labels):
        raise ConfigError(f"data.val_size={val_size} must be in [0, {len(labels)}): the {what} training files "
                          f"hold {len(labels)} images")
    if val_size == 0:
        log.warning(f"data.val_size=0: validating on the {what} test split, so val metrics are not held out")
        return torch.arange(len(labels)), None
    return tuple(stratified_parts(labels, (len(labels) - val_size, val_size), seed))


def image_split(n: int, val_fraction: float, test_fraction: float, seed: int,
                what: str = "images") -> "tuple[Tensor, Tensor, Tensor]":
    """(train, val, test) indices of n items from a seeded permutation; val and test hold at least one each."""
    fractions = [val_fraction, test_fraction]
    if any(not 0 < f < 1 for f in fractions) or sum(fractions) >= 1:
        raise ConfigError(f"cannot split {n} {what} with fractions {fractions}: use fractions in (0, 1) "
                          f"summing to less than 1")
    held = [max(1, round(n * f)) for f in fractions]
    if n - sum(held) < 1:
        raise ConfigError(f"no {what} left to train on from {n} with fractions {fractions}: lower the "
                          f"fractions or add data")
    return tuple(_cut(torch.randperm(n, generator=torch.Generator().manual_seed(seed)), [n - sum(held), *held]))


def slice_blocks(n: int, val_fraction: float, test_fraction: float, has_test: bool) -> dict[str, list[int]]:
    """Contiguous blocks of range(n): train first, then val, then (without a separate testing stack) test."""
    n_val = round(n * val_fraction)
    n_train = n - n_val if has_test else round(n * (1 - val_fraction - test_fraction))  # the rest, not rounded apart
    if not 0 < val_fraction < 1 or n_train < 1 or n_val < 1 or (not has_test and n - n_train - n_val < 1):
        raise ConfigError(f"{n} slices cannot be split into contiguous train/val{'' if has_test else '/test'} "
                          f"blocks with data.val_fraction={val_fraction}, data.test_fraction={test_fraction}: "
                          f"change the fractions or lower data.slice_step")
    parts = _cut(torch.arange(n), [n_train, n_val] + ([] if has_test else [n - n_train - n_val]))
    return {k: p.tolist() for k, p in zip(("train", "val", "test"), parts)}
