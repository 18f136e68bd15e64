"""Batched, on-device joint augmentation of images and masks: random crop, flips, 90-degree turns, rotation by any
angle (one grid_sample: bilinear for images, nearest for masks, mirrored at the border), brightness/contrast."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.errors import ConfigError


class SegAugment:
    """`(x [N,C,H,W] float, y [N,H,W] masks, generator) -> (x [N,C,h,w], y [N,h,w])`, every sample on its own draw."""

    # crop: pixels (None = whole images); flips and the transpose (rot90) each with p = 0.5, together all 8
    # orientations; angle: degrees; brightness shift and contrast factor in the units of x. Masks are only moved.
    def __init__(self, crop: Optional[int] = None, hflip: bool = True, vflip: bool = True, rot90: bool = True,
                 brightness: float = 0.0, contrast: float = 0.0, angle: float = 0.0) -> None:
        if crop is not None and crop < 1:
            raise ConfigError(f"data.augment.crop={crop} must be a positive number of pixels, or null for whole images")
        if brightness < 0 or not 0 <= contrast < 1 or not 0 <= angle <= 180:
            raise ConfigError(f"data.augment.brightness={brightness} must be >= 0, data.augment.contrast={contrast} in "
                              f"[0, 1) and data.augment.angle={angle} in [0, 180] degrees")
        self.crop, self.hflip, self.vflip, self.rot90 = crop, hflip, vflip, rot90
        self.brightness, self.contrast, self.angle = brightness, contrast, angle

    def __repr__(self) -> str:
        return (f"SegAugment(crop={self.crop}, hflip={self.hflip}, vflip={self.vflip}, rot90={self.rot90}, "
                f"brightness={self.brightness}, contrast={self.contrast}, angle={self.angle})")

    def check(self, height: int, width: int) -> None:
        """ConfigError when images of height x width cannot be cropped/turned as configured."""
        if self.crop is not None and (self.crop > height or self.crop > width):
            raise ConfigError(f"data.augment.crop={self.crop} is larger than the {height}x{width} training images: "
                              f"use a crop of at most {min(height, width)}")
        if self.rot90 and self.crop is None and height != width:
            raise ConfigError(f"data.augment.rot90=true needs square training crops, the images are {height}x{width}: "
                              f"set data.augment.crop or data.augment.rot90=false")

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator) -> "tuple[Tensor, Tensor]":
        # a fixed number of draws from `generator` per batch, so that a checkpointed generator resumes exactly
        self.check(*x.shape[-2:])
        if self.angle > 0:
            x, y = self._rotated_crops(x, y, generator)
        n, c, h, w = x.shape
        crop = self.crop if self.angle == 0 else None  # the rotated crop is cut already
        src = self._sources(n, h, w, crop, x.device, generator)  # [N, h', w'] flat source indices
        out_h, out_w = src.shape[1:]
        x = x.reshape(n, c, h * w).gather(2, src.view(n, 1, -1).expand(n, c, -1)).view(n, c, out_h, out_w)
        y = y.reshape(n, h * w).gather(1, src.view(n, -1)).view(n, out_h, out_w)
        if self.brightness > 0 or self.contrast > 0:  # contrast about each image's mean, then a brightness shift
            u = torch.rand((2, n, 1, 1, 1), generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (1 + self.contrast * u[0]) + mean + self.brightness * u[1]
        return x, y

    def _rotated_crops(self, x: Tensor, y: Tensor, gen: torch.Generator) -> "tuple[Tensor, Tensor]":
        """Crops (or whole images) rotated by random angles about random centres, as one grid_sample per tensor."""
        n, _, h, w = x.shape
        ch, cw = (self.crop, self.crop) if self.crop is not None else (h, w)
        u = torch.rand((3, n), generator=gen, device=x.device, dtype=torch.float64)
        theta = (u[0] * 2 - 1) * math.radians(self.angle)
        # crop centre in pixels, on the pixel grid (top-left corner a whole pixel): angle 0 is an exact crop
        cy = (u[1] * (h - ch + 1)).floor().clamp(max=h - ch) + ch / 2
        cx = (u[2] * (w - cw + 1)).floor().clamp(max=w - cw) + cw / 2
        cos, sin = theta.cos(), theta.sin()
        # output offsets (a, b) in [-1, 1] from the crop centre, rotated, in the source's normalised units
        # (align_corners=False: pixel coordinate p maps to 2p/size - 1)
        affine = torch.stack([torch.stack([cw / w * cos, -ch / w * sin, 2 * cx / w - 1], 1),
                              torch.stack([cw / h * sin, ch / h * cos, 2 * cy / h - 1], 1)], 1)
        grid = F.affine_grid(affine.to(x.dtype), [n, 1, ch, cw], align_corners=False)
        xr = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        yr = F.grid_sample(y.unsqueeze(1).to(x.dtype), grid, mode="nearest", padding_mode="reflection",
                           align_corners=False)
        return xr, yr.squeeze(1).round().to(y.dtype)

    def _sources(self, n: int, h: int, w: int, crop: Optional[int], dev: torch.device, gen: torch.Generator) -> Tensor:
        """Flat source index of every output pixel: crop offset + flipped/transposed position inside the crop."""
        # the 8 symmetries of the square: a flip of the rows, of the columns, and an optional transpose
        ch, cw = (crop, crop) if crop is not None else (h, w)
        top = torch.randint(0, h - ch + 1, (n, 1, 1), generator=gen, device=dev)
        left = torch.randint(0, w - cw + 1, (n, 1, 1), generator=gen, device=dev)
        coin = torch.rand((3, n, 1, 1), generator=gen, device=dev) < 0.5  # vflip, hflip, transpose
        i = torch.arange(ch, device=dev).view(1, ch, 1)
        j = torch.arange(cw, device=dev).view(1, 1, cw)
        rows = torch.where(coin[0] & self.vflip, ch - 1 - i, i).expand(n, ch, cw)
        cols = torch.where(coin[1] & self.hflip, cw - 1 - j, j).expand(n, ch, cw)
        if self.rot90:  # square here (checked): output (i, j) reads the crop's (j, i)
            rows, cols = torch.where(coin[2], cols, rows), torch.where(coin[2], rows, cols)
        return (top + rows) * w + left + cols
