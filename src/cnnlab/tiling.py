"""Whole-image inference in overlapping tiles (logits kept `overlap // 2` pixels inside a tile's inner edges, so a
receptive field within that margin gives the untiled result) and test-time augmentation over the 8 flips/turns."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from cnnlab.errors import ConfigError


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length `tile`, stepping by tile - overlap, the last one ending at `size`."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, tile - overlap)) + [size - tile]


def _kept(starts: list[int], tile: int, size: int, margin: int) -> list["tuple[int, int]"]:
    """Per tile, the [lo, hi) range of image positions it writes: its interior, the image border included."""
    last = len(starts) - 1
    return [(s if k == 0 else s + margin, min(s + tile, size) if k == last else s + tile - margin)
            for k, s in enumerate(starts)]


@torch.no_grad()
def tiled_logits(net: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int) -> Tensor:
    """Logits [N,K,H,W] of images x [N,C,H,W], computed tile by tile (all N images of a tile in one call)."""
    if tile < 1 or not 0 <= overlap < tile or overlap % 2:
        raise ConfigError(f"trainer.eval_tile={tile}, trainer.eval_overlap={overlap}: need eval_tile >= 1 and an "
                          f"even eval_overlap in [0, eval_tile)")
    h, w = x.shape[-2:]
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    keep_r, keep_c = _kept(rows, tile, h, overlap // 2), _kept(cols, tile, w, overlap // 2)
    out = None
    for r, (r_lo, r_hi) in zip(rows, keep_r):
        for c, (c_lo, c_hi) in zip(cols, keep_c):
            logits = net(x[:, :, r:r + tile, c:c + tile])
            if out is None:
                out = logits.new_empty(x.shape[0], logits.shape[1], h, w)
            out[:, :, r_lo:r_hi, c_lo:c_hi] = logits[:, :, r_lo - r:r_hi - r, c_lo - c:c_hi - c]
    return out


@torch.no_grad()
def dihedral_mean_probs(net: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Class probabilities [N,K,H,W] averaged over the 8 flips/turns of the input, each turned back (8 passes)."""
    total = None
    for transpose in (False, True):
        t = x.transpose(-1, -2) if transpose else x
        for dims in ((), (-1,), (-2,), (-2, -1)):
            probs = net(t.flip(dims) if dims else t).float().softmax(1)
            probs = probs.flip(dims) if dims else probs
            probs = probs.transpose(-1, -2) if transpose else probs
            total = probs if total is None else total + probs
    return total / 8
