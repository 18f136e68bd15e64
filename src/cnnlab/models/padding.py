"""Any-size input for networks with a total stride: pad up to a multiple of the stride, crop the output back.

A network that pools k times by 2 needs H and W divisible by 2^k for its up-sampling path to land on the input's
grid again. Padding at the bottom and right keeps pixel (0, 0) where it was, so cropping the output to [:H, :W]
returns exactly one prediction per input pixel.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """x [N,C,H,W] padded at the bottom/right to the next multiple of `multiple` (reflect, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    # reflect mirrors real image structure into the margin; it needs the pad to be smaller than the side,
    # so tiny inputs (e.g. 5x5 before a 32-stride network) fall back to repeating the edge pixels
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop_to(y: Tensor, height: int, width: int) -> Tensor:
    """The top-left height x width window of y [N,K,H',W'] (undoes `pad_to_multiple`)."""
    return y[..., :height, :width]
