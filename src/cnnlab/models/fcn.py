"""FCN: Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
FCN-32s/16s/8s (section 4.2, figure 3) with padded convs, so no crop offsets; a slimmer VGG by default for CPUs,
or `backbone="vgg16"`: the paper's network, fc6/fc7 from VGG16's fully connected layers (`backbone_weights`)."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ConfigError

from .layers import conv_relu, pad_to_multiple
from .pretrained import grey_stem, load_fitting, pretrained_state

VGG16 = ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3), 4096, 7, "none")  # widths, convs, fc width, fc6 kernel, norm


def bilinear_kernel(factor: int) -> Tensor:
    """The 2f x 2f kernel of bilinear up-sampling by `factor` f: outer product of the triangle 1 - |i - c| / f."""
    size = 2 * factor
    centre = (size - 1) / 2  # between the two middle taps: the kernel is symmetric about the source pixel
    tri = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return (tri[:, None] * tri[None, :]).float()


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed conv (stride f, kernel 2f, padding f/2) initialised so that each channel is up-sampled bilinearly."""
    # the paper's learned up-sampling (section 3.3); output exactly f x the input: (H-1)f - 2(f/2) + 2f = fH
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.zero_()
        for c in range(channels):
            up.weight[c, c] = bilinear_kernel(factor)
    up.keeps_init = True  # init_weights (models/init.py) leaves the bilinear start alone
    return up


def _stride_of(variant: str, stages: int) -> int:
    """log2 of the prediction stride named by `variant` ("8s" -> 3), checked against the number of stages."""
    n = int(variant[:-1]) if variant.endswith("s") and variant[:-1].isdigit() else 0
    p = n.bit_length() - 1
    if n < 1 or n != 2 ** p or p > stages:
        raise ConfigError(f"model.variant={variant!r}: use '<N>s' with N a power of two up to 2^stages = "
                          f"{2 ** stages} (the paper: 32s, 16s, 8s)")
    return p


class FCN(nn.Module):
    """FCN-32s/16s/8s ("Ns": prediction stride N before the last up-sampling): logits [N,K,H,W] for any [N,C,H,W]."""

    def __init__(self, num_classes: int, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128, 256, 256),
                 convs: Sequence[int] = (2, 2, 3, 3, 3), fc_width: int = 512, fc_kernel: int = 3,
                 dropout: float = 0.5, variant: str = "8s", norm: str = "none", downsample: int = 1,
                 backbone: Optional[str] = None, backbone_weights: Optional[str] = None) -> None:
        super().__init__()
        if backbone not in (None, "vgg16"):
            raise ConfigError(f"model.backbone={backbone}: use vgg16 (the paper's), or null for model.widths/convs")
        if backbone:  # the paper's encoder, so that VGG16's weights fit
            widths, convs, fc_width, fc_kernel, norm = VGG16
        if len(widths) != len(convs) or not widths or norm not in ("bn", "none") or downsample < 1:
            raise ConfigError(f"model.widths={list(widths)} and model.convs={list(convs)} need one entry per stage, "
                              f"model.norm bn|none (got {norm!r}), model.downsample >= 1 (got {downsample})")
        self.in_channels, self.downsample = in_channels, downsample
        self.stages_n, p = len(widths), _stride_of(variant, len(widths))
        self.stages = nn.ModuleList()
        cin = in_channels
        for width, n in zip(widths, convs):  # VGG: n 3x3 convs and a 2x2 max-pool per stage
            layers = [m for i in range(n) for m in conv_relu(cin if i == 0 else width, width, 3, norm == "bn")]
            self.stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            cin = width
        # fc6 and fc7 as convs (the paper: 7x7 and 1x1, 4096 maps; here fc6 is padded, so maps stay 1/2^S)
        self.fc = nn.Sequential(*conv_relu(widths[-1], fc_width, fc_kernel, norm == "bn"), nn.Dropout(dropout),
                                *conv_relu(fc_width, fc_width, 1, norm == "bn"), nn.Dropout(dropout))
        self.score = nn.Conv2d(fc_width, num_classes, 1)
        # skips from the pool outputs at strides 2^(S-1), 2^(S-2), ... down to the prediction stride 2^p
        self.skip_stages = list(range(self.stages_n - 2, p - 2, -1))
        self.skip_scores = nn.ModuleList([nn.Conv2d(widths[s], num_classes, 1) for s in self.skip_stages])
        zeroed = [*self.skip_scores, self.score] if backbone else [*self.skip_scores]
        for layer in zeroed:  # zero start: FCN-16s begins as FCN-32s (section 4.2); VGG16's score layer (4.1)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            layer.keeps_init = True
        self.skip_ups = nn.ModuleList([bilinear_upsampler(num_classes, 2) for _ in self.skip_stages])
        self.final_up = bilinear_upsampler(num_classes, 2 ** p) if p > 0 else nn.Identity()
        if backbone_weights:
            self._load_vgg16(backbone_weights, in_channels)

    def _load_vgg16(self, source: str, in_channels: int) -> None:
        """torchvision's vgg16 weights: features.i into the stages, classifier.0 / .3 reshaped into fc6 / fc7."""
        key = "model.backbone_weights"
        state = grey_stem(pretrained_state("vgg16", source, key), "features.0.weight", in_channels, key)
        names, start = {"fc.0": "classifier.0", "fc.3": "classifier.3"}, 0
        for s, stage in enumerate(self.stages):
            names.update({f"stages.{s}.{i}": f"features.{start + i}" for i in range(len(stage))})
            start += len(stage)
        part = nn.ModuleDict({"stages": self.stages, "fc": self.fc})
        renamed = {}
        for name, target in part.state_dict().items():  # weights and biases; fc6/fc7's reshaped into convs'
            module, _, leaf = name.rpartition(".")
            value = state.get(f"{names.get(module)}.{leaf}") if leaf in ("weight", "bias") else None
            if value is not None:
                renamed[name] = value.reshape(target.shape) if value.numel() == target.numel() else value
        load_fitting(part, renamed, key, source)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The encoder and fc6/fc7 (pretrained with model.backbone_weights)."""
        return [*self.stages.parameters(), *self.fc.parameters()]

    def check_input(self, x: Tensor) -> None:
        """ConfigError unless x is [N, in_channels, H, W]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"model=fcn takes [N,{self.in_channels},H,W] images, got {list(x.shape)}: set "
                              f"model.in_channels to the data's channels")

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.downsample * 2 ** self.stages_n)  # the total stride
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        pools = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        score = self.score(self.fc(x))
        for s, skip, up in zip(self.skip_stages, self.skip_scores, self.skip_ups):
            score = up(score) + skip(pools[s])
        score = self.final_up(score)
        if self.downsample > 1:
            score = F.interpolate(score, scale_factor=self.downsample, mode="bilinear", align_corners=False)
        return score[..., :h, :w]
