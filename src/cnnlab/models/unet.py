"""U-Net: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015.

The paper's network (figure 1): a contracting path of `depth` stages, each two 3x3 convs + ReLU then a 2x2 max-pool
that halves the size and (from the next stage on) doubles the channels; an expansive path that up-samples by a
2x2 "up-convolution" halving the channels, concatenates the contracting path's map of the same size (the skip), and
applies two 3x3 convs; a final 1x1 conv to the class scores. The paper uses 64 channels at the top, depth 4 and
unpadded convs (an input tile of 572 gives an output of 388, stitched with the overlap-tile strategy). We pad the
convs instead (same size in and out), so the output has the input's size and the skips need no cropping; inputs
whose sides are not multiples of 2^depth are reflect-padded and the output cropped back (models/padding.py).

Options beyond the paper: batch norm after each conv (norm="bn"; the paper predates it and trained with batch
size 1), bilinear up-sampling + 1x1 conv instead of the transposed conv, dropout on the bottleneck (the paper puts
drop-out "at the end of the contracting path"), and `downsample`: the network runs on the input average-pooled by
this factor and its logits are up-sampled bilinearly to the input's size. Every stage of a U-Net costs about the
same per input pixel, so downsample=2 makes training ~4x cheaper; roads (10-25 px wide at 400x400) and
mitochondria (50-150 px across) survive half resolution, which is what makes the CPU recipes fit their budgets.

`encoder` (resnet18, resnet34, resnet50, vgg16_bn, ...; models/encoders.py) puts torchvision's classifier in place of
the contracting path, pretrained with `encoder_weights`: the decoder (one level per encoder stage, `base` * 2^level
channels) takes its stage outputs as skips, and logits at the finest stage's stride (ResNet: 2) are up-sampled
bilinearly to the input's size.

Parameters (K classes, base b, depth d, norm="none", up="transpose"): stage s has c_s = b*2^s channels;
  encoder  sum_s 9*c_{s-1}*c_s + c_s + 9*c_s^2 + c_s       (c_{-1} = in_channels)
  decoder  sum_s 4*c_{s+1}*c_s + c_s  +  9*2c_s*c_s + c_s + 9*c_s^2 + c_s   for s = d-1 .. 0
  head     c_0*K + K.   The paper's configuration (b=64, d=4, 1 channel in, 2 classes) has 31,030,658.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.device import check_model_fits
from cnnlab.errors import ConfigError
from cnnlab.models.padding import crop_to, pad_to_multiple

from .encoders import TorchvisionEncoder

NORMS = ("bn", "none")
UPS = ("transpose", "bilinear")


def double_conv(cin: int, cout: int, norm: str) -> nn.Sequential:
    """Two padded 3x3 convs, each followed by (batch norm and) ReLU."""
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, padding=1, bias=norm == "none"))  # BN's shift makes a bias redundant
        if norm == "bn":
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _upsampler(cin: int, cout: int, up: str) -> nn.Module:
    if up == "transpose":  # the paper's 2x2 up-convolution, stride 2: each input pixel paints a 2x2 block
        return nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(cin, cout, kernel_size=1))


class UNet(nn.Module):
    """U-Net with padded convs: logits [N,K,H,W] for any input [N,C,H,W]."""

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
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.encoder, self.finest = None, 1
        if encoder:
            self.encoder = TorchvisionEncoder(encoder, in_channels, encoder_weights)
            chans, self.finest = self.encoder.channels, self.encoder.strides[0]
            self.depth = (self.encoder.strides[-1] // self.finest).bit_length() - 1
            widths = [base * 2 ** s for s in range(len(chans) - 1)] + [chans[-1]]
            self.ups = nn.ModuleList([_upsampler(widths[s + 1], widths[s], up) for s in reversed(range(self.depth))])
            self.up_convs = nn.ModuleList([double_conv(chans[s] + widths[s], widths[s], norm)
                                           for s in reversed(range(self.depth))])
            self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
            return
        widths = [base * 2 ** s for s in range(depth + 1)]
        convs = [(in_channels, widths[0])] + [(widths[s - 1], widths[s]) for s in range(1, depth + 1)]
        weights = sum(9 * (a * b + b * b) for a, b in convs) + sum(
            4 * widths[s + 1] * widths[s] + 9 * (2 * widths[s] * widths[s] + widths[s] ** 2) for s in range(depth))
        check_model_fits(weights, f"model.depth={depth} and model.base={base}")  # the 3x3 and 2x2 kernels
        self.down = nn.ModuleList([double_conv(in_channels, widths[0], norm)] +
                                  [double_conv(widths[s - 1], widths[s], norm) for s in range(1, depth + 1)])
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList([_upsampler(widths[s + 1], widths[s], up) for s in reversed(range(depth))])
        self.up_convs = nn.ModuleList([double_conv(2 * widths[s], widths[s], norm) for s in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    @property
    def stride(self) -> int:
        """Total down-sampling factor: H and W are padded to a multiple of this."""
        return self.downsample * self.finest * 2 ** self.depth

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
        x = pad_to_multiple(x, self.stride)
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
        if self.downsample * self.finest > 1:
            x = F.interpolate(x, scale_factor=self.downsample * self.finest, mode="bilinear", align_corners=False)
        return crop_to(x, h, w)
