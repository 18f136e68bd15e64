"""U-Net: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015. The paper's network (figure 1) with padded convs, so the output has the input's size; options beyond
it: batch norm, bilinear up-sampling, bottleneck dropout, `downsample`, and a torchvision `encoder` (encoders.py)."""
from __future__ import annotations

from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.device import check_model_fits
from cnnlab.errors import ConfigError

from .encoders import TorchvisionEncoder
from .layers import conv_relu, pad_to_multiple

NORMS = ("bn", "none")
UPS = ("transpose", "bilinear")


def double_conv(cin: int, cout: int, norm: str) -> nn.Sequential:
    """Two padded 3x3 convs, each followed by (batch norm and) ReLU."""
    return nn.Sequential(*conv_relu(cin, cout, 3, norm == "bn"), *conv_relu(cout, cout, 3, norm == "bn"))


def _upsampler(cin: int, cout: int, up: str) -> nn.Module:
    if up == "transpose":  # the paper's 2x2 up-convolution, stride 2: each input pixel paints a 2x2 block
        return nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(cin, cout, kernel_size=1))


class UNet(nn.Module):
    """U-Net with padded convs: logits [N,K,H,W] for any input [N,C,H,W] (padded to a multiple of the stride)."""

    def __init__(self, num_classes: int, in_channels: int = 3, base: int = 32, depth: int = 4, norm: str = "bn",
                 up: str = "transpose", dropout: float = 0.0, downsample: int = 1, encoder: Optional[str] = None,
                 encoder_weights: Optional[str] = None) -> None:
        super().__init__()
        if norm not in NORMS or up not in UPS:
            raise ConfigError(f"model.norm={norm!r} / model.up={up!r}: use norm in {list(NORMS)}, up in {list(UPS)}")
        if depth < 1 or base < 1 or downsample < 1 or num_classes < 2:
            raise ConfigError(f"model.depth={depth}, model.base={base} and model.downsample={downsample} must be "
                              f">= 1 (and classes >= 2, got {num_classes})")
        self.in_channels, self.depth, self.downsample = in_channels, depth, downsample
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()  # "at the end of the contracting path"
        self.encoder, self.finest = None, 1
        if encoder:  # the decoder: one level per encoder stage, base * 2^level channels; logits at the finest stride
            self.encoder = TorchvisionEncoder(encoder, in_channels, encoder_weights)
            chans, self.finest = self.encoder.channels, self.encoder.strides[0]
            self.depth = (self.encoder.strides[-1] // self.finest).bit_length() - 1
            widths = [base * 2 ** s for s in range(len(chans) - 1)] + [chans[-1]]
        else:  # stage s: base * 2^s channels (the paper: base 64, depth 4; 31,030,658 parameters for 1 in, 2 out)
            chans = widths = [base * 2 ** s for s in range(depth + 1)]
            convs = [(in_channels, widths[0])] + [(widths[s - 1], widths[s]) for s in range(1, depth + 1)]
            weights = sum(9 * (a * b + b * b) for a, b in convs) + sum(
                4 * widths[s + 1] * widths[s] + 9 * (2 * widths[s] * widths[s] + widths[s] ** 2) for s in range(depth))
            check_model_fits(weights, f"model.depth={depth} and model.base={base}")  # the 3x3 and 2x2 kernels
            self.down = nn.ModuleList([double_conv(a, b, norm) for a, b in convs])
            self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList([_upsampler(widths[s + 1], widths[s], up) for s in reversed(range(self.depth))])
        self.up_convs = nn.ModuleList([double_conv(chans[s] + widths[s], widths[s], norm)
                                       for s in reversed(range(self.depth))])
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The encoder: torchvision's (model.encoder) or the contracting path (a U-Net started with init_from)."""
        return (self.encoder if self.encoder is not None else self.down).parameters()

    def check_input(self, x: Tensor) -> None:
        """ConfigError unless x is [N, in_channels, H, W]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"model=unet takes [N,{self.in_channels},H,W] images, got {list(x.shape)}: set "
                              f"model.in_channels to the data's channels")

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.downsample * self.finest * 2 ** self.depth)
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        skips = self.encoder(x) if self.encoder is not None else []
        for s, block in enumerate(self.down if self.encoder is None else []):
            x = block(x if s == 0 else self.pool(x))
            skips.append(x)
        x = self.dropout(skips.pop())
        for up, conv in zip(self.ups, self.up_convs):
            x = conv(torch.cat([skips.pop(), up(x)], dim=1))  # skip first, as in the paper's figure
        x = self.head(x)
        if self.downsample * self.finest > 1:  # downsample=2: ~4x cheaper; roads and mitochondria survive it
            x = F.interpolate(x, scale_factor=self.downsample * self.finest, mode="bilinear", align_corners=False)
        return x[..., :h, :w]
