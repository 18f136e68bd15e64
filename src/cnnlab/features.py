"""Hand-designed features of float images [N,C,H,W] (colour histograms, Sobel, HOG), batched torch ops on any device.

HOG: Dalal & Triggs, "Histograms of Oriented Gradients for Human Detection", CVPR 2005."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

from cnnlab.errors import ConfigError

# The lecture's Sobel mask for the horizontal gradient d/dx (it fires on a vertical edge); d/dy is its transpose.
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def grey(x: Tensor) -> Tensor:
    """Grey image [N,1,H,W] as the channel mean (the image itself for 1 channel)."""
    return x.mean(dim=1, keepdim=True)


def sobel(x: Tensor) -> tuple[Tensor, Tensor]:
    """Sobel responses (gx, gy), each [N,H,W], of the grey image; borders replicate so a flat image gives 0."""
    # a correlation (no kernel flip): gx = right column minus left column, gy = lower row minus upper row
    kx = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # [2,1,3,3]
    g = F.conv2d(F.pad(grey(x), (1, 1, 1, 1), mode="replicate"), kernels)
    return g[:, 0], g[:, 1]


def colour_histogram(x: Tensor, bins: int = 16, value_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Per-channel hard-binned histograms [N, C*bins], each channel's bins summing to 1 (grey for C=1)."""
    n, c, h, w = x.shape
    lo, hi = float(value_range[0]), float(value_range[1])
    if bins < 1 or hi <= lo:
        raise ConfigError(f"colour_histogram needs bins >= 1 and value_range lo < hi, got bins={bins}, "
                          f"value_range={value_range}: fix data.hist_bins / data.value_range")
    idx = ((x - lo) * (bins / (hi - lo))).floor().clamp_(0, bins - 1).long()  # outside the range: first/last bin
    idx = idx + torch.arange(c, device=x.device).view(1, c, 1, 1) * bins  # one bin range per channel
    hist = torch.zeros(n, c * bins, dtype=x.dtype, device=x.device)
    hist.scatter_add_(1, idx.view(n, -1), torch.ones(n, c * h * w, dtype=x.dtype, device=x.device))
    return hist / (h * w)


def colour_moments(x: Tensor) -> Tensor:
    """Per-channel mean and standard deviation [N, 2C] (the 'patch colour' of the road baseline)."""
    flat = x.flatten(2)
    return torch.cat([flat.mean(2), flat.std(2, unbiased=False)], dim=1)


def _orientation_cells(x: Tensor, cell: int, bins: int) -> Tensor:
    """Magnitude-weighted unsigned orientation histograms per whole cell, [N, H//cell, W//cell, bins] (sums)."""
    gx, gy = sobel(x)
    hc, wc = x.shape[-2] // cell, x.shape[-1] // cell
    if hc < 1 or wc < 1:
        raise ConfigError(f"image {tuple(x.shape[-2:])} is smaller than one {cell}x{cell} cell: lower features.cell")
    gx, gy = gx[:, : hc * cell, : wc * cell], gy[:, : hc * cell, : wc * cell]
    mag = torch.sqrt(gx * gx + gy * gy)
    # bin b is centred at b*180/bins; a magnitude is split linearly between the two nearest (as Dalal & Triggs)
    pos = torch.rad2deg(torch.atan2(gy, gx)).remainder(180.0) * (bins / 180.0)  # in bin units, [0, bins)
    lower = pos.floor()
    frac = pos - lower
    b0 = lower.long().remainder(bins)
    b1 = (b0 + 1).remainder(bins)
    votes = torch.zeros(x.shape[0], bins, hc * cell, wc * cell, dtype=x.dtype, device=x.device)
    votes.scatter_add_(1, b0.unsqueeze(1), (mag * (1 - frac)).unsqueeze(1))
    votes.scatter_add_(1, b1.unsqueeze(1), (mag * frac).unsqueeze(1))
    cells = F.avg_pool2d(votes, cell) * (cell * cell)  # [N,bins,hc,wc] sums per cell
    return cells.permute(0, 2, 3, 1)


def gradient_histograms(x: Tensor, cell: int = 8, bins: int = 9) -> Tensor:
    """Sobel orientation histograms per cell, weighted by gradient magnitude, per pixel of a cell: [N, cells*bins]."""
    return _orientation_cells(x, cell, bins).flatten(1) / (cell * cell)


def hog(x: Tensor, cell: int = 8, block: int = 2, bins: int = 9, clip: float = 0.2, eps: float = 1e-6) -> Tensor:
    """HOG [N, blocks*block*block*bins]: cells of Sobel orientation histograms, overlapping blocks, L2-Hys."""
    # Dalal & Triggs used [-1,0,1] on the strongest colour channel; Sobel on the grey image smooths slightly
    cells = _orientation_cells(x, cell, bins)  # [N,hc,wc,bins]
    n, hc, wc, _ = cells.shape
    if hc < block or wc < block:
        raise ConfigError(f"image {tuple(x.shape[-2:])} has {hc}x{wc} cells, fewer than one {block}x{block} "
                          "block: lower features.cell or features.block")
    blocks = cells.unfold(1, block, 1).unfold(2, block, 1)  # [N,bh,bw,bins,block,block], a stride of one cell
    blocks = blocks.permute(0, 1, 2, 4, 5, 3).reshape(n, hc - block + 1, wc - block + 1, -1)

    def l2(v: Tensor) -> Tensor:
        return v / torch.sqrt((v * v).sum(-1, keepdim=True) + eps * eps)

    return l2(l2(blocks).clamp(max=clip)).flatten(1)


@dataclass
class FeatureSpec:
    """Which features to concatenate, in order, and their parameters (everything that changes the numbers)."""

    names: list[str] = field(default_factory=lambda: ["hog", "colour_histogram"])
    hist_bins: int = 16
    value_range: tuple[float, float] = (0.0, 1.0)
    cell: int = 8
    block: int = 2
    orientations: int = 9

    def __post_init__(self) -> None:
        self.names = list(self.names)
        self.value_range = (float(self.value_range[0]), float(self.value_range[1]))
        unknown = [n for n in self.names if n not in EXTRACTORS]
        if unknown or not self.names:
            raise ConfigError(f"unknown or empty feature list {self.names}: choose from {sorted(EXTRACTORS)}")

    def key(self) -> dict:
        """A JSON-able description, used as (part of) a cache key."""
        return asdict(self)


EXTRACTORS: dict[str, Callable[[Tensor, FeatureSpec], Tensor]] = {
    "raw_pixels": lambda x, s: x.flatten(1),
    "colour_histogram": lambda x, s: colour_histogram(x, s.hist_bins, s.value_range),
    "colour_moments": lambda x, s: colour_moments(x),
    "gradient_histograms": lambda x, s: gradient_histograms(x, s.cell, s.orientations),
    "hog": lambda x, s: hog(x, s.cell, s.block, s.orientations),
}


def extract(x: Tensor, spec: FeatureSpec) -> Tensor:
    """Concatenate the features of images [N,C,H,W] that `spec` names into [N,D]."""
    return torch.cat([EXTRACTORS[name](x, spec).flatten(1) for name in spec.names], dim=1)


@dataclass
class Standardiser:
    """Per-dimension (x - mean) / std with statistics from the training split only; constant dims map to 0."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, train: Tensor, eps: float = 1e-6) -> "Standardiser":
        """Statistics of `train` [N,D] (population std; std < eps is replaced by 1)."""
        std, mean = torch.std_mean(train.double(), 0, correction=0)
        return cls(mean.to(train.dtype), std.masked_fill(std < eps, 1.0).to(train.dtype))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def sobel_image(x: Tensor, max_images: int = 4, pad: int = 2) -> Tensor:
    """A picture [3,H',W'] in [0,1]: a row per image of panels grey | gx | gy | magnitude (0.5 = zero for gx, gy)."""
    x = x[:max_images].float()
    g = grey(x)[:, 0]
    gx, gy = sobel(x)
    mag = torch.sqrt(gx * gx + gy * gy)

    def scaled(t: Tensor, signed: bool) -> Tensor:
        flat = t.flatten(1)
        if signed:
            return 0.5 + 0.5 * t / flat.abs().amax(1).clamp_min(1e-12).view(-1, 1, 1)
        lo, hi = flat.amin(1).view(-1, 1, 1), flat.amax(1).view(-1, 1, 1)
        return (t - lo) / (hi - lo).clamp_min(1e-12)

    panels = torch.stack([scaled(g, False), scaled(gx, True), scaled(gy, True), scaled(mag, False)], 1)
    panels = F.pad(panels, (pad, pad, pad, pad), value=1.0)  # [n,4,h,w] with white borders
    return make_grid(panels.flatten(0, 1).unsqueeze(1), nrow=4, padding=0)

