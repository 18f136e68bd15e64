"""Parts shared by the convolutional models: conv + (batch norm) + ReLU, and padding inputs to the total stride."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def conv_relu(cin: int, cout: int, k: int, bn: bool = False) -> list[nn.Module]:
    """A padded k x k conv, then batch norm (with `bn`: its shift makes the conv's bias redundant) and ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.ReLU(inplace=True)]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """x [N,C,H,W] padded at the bottom/right to the next multiple of `multiple` (reflect, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    # reflect mirrors real image structure into the margin; it needs the pad to be smaller than the side,
    # so tiny inputs (e.g. 5x5 before a 32-stride network) fall back to repeating the edge pixels
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)  # bottom/right: cropping the output to [:H, :W] undoes it
