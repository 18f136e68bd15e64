"""Batched, on-device augmentation: random padded crop, horizontal flip, brightness/contrast jitter.

Per-sample draws come from the passed generator (a checkpointed one resumes exactly); crop and flip are one gather."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


class BatchAugment:
    """`(x [N,C,H,W], y, generator) -> (x, y)`; a [N,H,W] mask target is cropped and flipped with its image."""

    def __init__(self, crop_padding: int = 4, hflip: bool = True, jitter: float = 0.0,
                 mask_fill: int = 0, fill: float = 0.0) -> None:
        if crop_padding < 0 or jitter < 0:
            raise ConfigError(f"data.crop_padding={crop_padding} and data.jitter={jitter} are not valid: both must "
                              f"be >= 0 (0 = off)")
        self.crop_padding, self.hflip, self.jitter, self.mask_fill = crop_padding, hflip, jitter, mask_fill
        self.fill = fill  # value of the padding, in the (normalised) units of x: e.g. the background's

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator) -> "tuple[Tensor, Tensor]":
        if self.crop_padding or self.hflip:
            rows, cols = self._indices(x, generator)
            if y.dim() == 3 and y.shape[1:] == x.shape[2:]:  # a mask
                y = self._gather(y.unsqueeze(1), rows, cols, self.mask_fill).squeeze(1)
            x = self._gather(x, rows, cols, self.fill)
        if self.jitter > 0:
            x = self._jitter(x, generator)
        return x, y

    def _indices(self, x: Tensor, gen: torch.Generator) -> "tuple[Tensor, Tensor]":
        """Per-sample source rows [N,H] and columns [N,W] in the padded image (flip folded into the columns)."""
        n, _, h, w = x.shape
        p, dev = self.crop_padding, x.device
        dy = torch.randint(0, 2 * p + 1, (n, 1), generator=gen, device=dev)
        dx = torch.randint(0, 2 * p + 1, (n, 1), generator=gen, device=dev)
        rows = dy + torch.arange(h, device=dev)
        cols = torch.arange(w, device=dev).expand(n, w)
        if self.hflip:
            flip = torch.rand((n, 1), generator=gen, device=dev) < 0.5
            cols = torch.where(flip, cols.flip(1), cols)
        return rows, dx + cols

    def _gather(self, x: Tensor, rows: Tensor, cols: Tensor, fill: float) -> Tensor:
        """x[n, :, rows[n, i], cols[n, j]] from the zero-padded x, as one flat gather."""
        n, c, h, w = x.shape
        p = self.crop_padding
        xp = x
        if p:  # a filled canvas plus one slice copy: cheaper than F.pad on CPU
            xp = x.new_full((n, c, h + 2 * p, w + 2 * p), fill)
            xp[:, :, p:p + h, p:p + w] = x
        flat = (rows.unsqueeze(2) * (w + 2 * p) + cols.unsqueeze(1)).view(n, 1, h * w).expand(n, c, h * w)
        return xp.reshape(n, c, -1).gather(2, flat).view(n, c, h, w)

    def _jitter(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Contrast factor in [1-j, 1+j] about each image's mean, then a brightness shift in [-j, j] (std units)."""
        n, dev, j = x.shape[0], x.device, self.jitter
        u = torch.rand((2, n, 1, 1, 1), generator=gen, device=dev, dtype=x.dtype) * 2 - 1
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (1 + j * u[0]) + mean + j * u[1]
