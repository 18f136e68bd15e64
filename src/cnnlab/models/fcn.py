"""FCN: Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.

A classification net made fully convolutional: a conv/pool encoder (the paper's VGG16: five stages of 2-3 3x3 convs
and a 2x2 max-pool, 64-128-256-512-512 channels, total stride 32), its fully connected layers recast as convs
("fc6" 7x7 with 4096 maps, "fc7" 1x1 with 4096, both with dropout 0.5), and a 1x1 "score" conv giving K class
scores per position at stride 32. Learned up-sampling (section 3.3) is a transposed conv of stride f and kernel
2f initialised to bilinear interpolation. FCN-32s up-samples the stride-32 scores straight to the input size;
FCN-16s first up-samples them 2x and adds a 1x1 score of the pool4 map (stride 16), then up-samples 16x; FCN-8s
adds a pool3 score the same way and up-samples 8x (section 4.2, figure 3). As in the paper the skip score layers
start at zero, so a 16s/8s net begins as the coarser net and learns to add the finer detail.

Here: `widths`/`convs` choose the stages (default a slimmer VGG for CPUs); `variant="Ns"` is the prediction stride N
before the final up-sampling (stages S: 32s/16s/8s for S=5, i.e. 0/1/2 skips; any power of two up to 2^S).
Differences from the paper: padded convs and fc6 (kernel `fc_kernel`, padded) keep every map exactly 1/2^s of the
input, so the skips need no crop offsets and the input needs no 100-pixel padding; inputs are reflect-padded to a
multiple of the total stride and the output is cropped back (models/padding.py). Optional batch norm after every
conv of the encoder and fc layers (norm="bn"), and `downsample` (run at reduced resolution, as in models/unet.py).

`backbone="vgg16"` is the paper's network exactly: VGG16's stages, fc6 (7x7, 4096) and fc7 (1x1, 4096) from its
fully connected layers' weights reshaped into convolutions (`backbone_weights`: a torchvision weights name or a
state-dict file of torchvision's vgg16), a zero-initialised score layer (section 4.1) and bilinear up-sampling.

Parameters (norm="none", K classes): encoder sum of 9*cin*cout + cout per conv; fc6 k^2*c_S*F + F; fc7 F*F + F;
score F*K + K; each skip score c_s*K + K; each 2x up-sampler K*K*4*4 (no bias); the final one K*K*(2N)^2.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ConfigError
from cnnlab.models.padding import crop_to, pad_to_multiple

from .pretrained import grey_stem, load_fitting, pretrained_state

VGG16 = ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3), 4096, 7, "none")  # widths, convs, fc width, fc6 kernel, norm


def bilinear_kernel(factor: int) -> Tensor:
    """The 2f x 2f kernel of bilinear up-sampling by `factor` f: outer product of the triangle 1 - |i - c| / f."""
    size = 2 * factor
    centre = (size - 1) / 2  # between the two middle taps: the kernel is symmetric about the source pixel
    tri = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return (tri[:, None] * tri[None, :]).float()


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed conv (stride f, kernel 2f, padding f/2) initialised so that each channel is up-sampled bilinearly.

    Output size is exactly f x the input's: (H-1)f - 2(f/2) + 2f = fH. Channel c maps only to channel c at init.
    """
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.zero_()
        for c in range(channels):
            up.weight[c, c] = bilinear_kernel(factor)
    up.keeps_init = True  # init_weights (models/init.py) leaves the bilinear start alone
    return up


def _conv(cin: int, cout: int, k: int, norm: str) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=norm == "none")]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.ReLU(inplace=True)]


def _stride_of(variant: str, stages: int) -> int:
    """log2 of the prediction stride named by `variant` ("8s" -> 3), checked against the number of stages."""
    n = int(variant[:-1]) if variant.endswith("s") and variant[:-1].isdigit() else 0
    p = n.bit_length() - 1
    if n < 1 or n != 2 ** p or p > stages:
        raise ConfigError(f"model.variant={variant!r}: use '<N>s' with N a power of two up to 2^stages = "
                          f"{2 ** stages} (the paper: 32s, 16s, 8s)")
    return p


class FCN(nn.Module):
    """FCN-32s/16s/8s: logits [N,K,H,W] for any input [N,C,H,W]."""

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
        for width, n in zip(widths, convs):
            layers = [m for i in range(n) for m in _conv(cin if i == 0 else width, width, 3, norm)]
            self.stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            cin = width
        self.fc = nn.Sequential(*_conv(widths[-1], fc_width, fc_kernel, norm), nn.Dropout(dropout),
                                *_conv(fc_width, fc_width, 1, norm), nn.Dropout(dropout))
        self.score = nn.Conv2d(fc_width, num_classes, 1)
        # skips from the pool outputs at strides 2^(S-1), 2^(S-2), ... down to the prediction stride 2^p
        self.skip_stages = list(range(self.stages_n - 2, p - 2, -1))
        self.skip_scores = nn.ModuleList([nn.Conv2d(widths[s], num_classes, 1) for s in self.skip_stages])
        for layer in self.skip_scores:  # zero start: FCN-16s begins as FCN-32s (the paper's section 4.2)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            layer.keeps_init = True
        self.skip_ups = nn.ModuleList([bilinear_upsampler(num_classes, 2) for _ in self.skip_stages])
        self.final_up = bilinear_upsampler(num_classes, 2 ** p) if p > 0 else nn.Identity()
        if backbone:
            nn.init.zeros_(self.score.weight)
            nn.init.zeros_(self.score.bias)
            self.score.keeps_init = True
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
        own = part.state_dict()
        renamed = {}
        for ours, theirs in names.items():
            for leaf in ("weight", "bias"):
                value = state.get(f"{theirs}.{leaf}")
                if f"{ours}.{leaf}" in own and value is not None:
                    target = own[f"{ours}.{leaf}"]
                    renamed[f"{ours}.{leaf}"] = value.reshape(target.shape) if value.numel() == target.numel() \
                        else value
        load_fitting(part, renamed, key, source)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The encoder and fc6/fc7 (pretrained with model.backbone_weights)."""
        return [*self.stages.parameters(), *self.fc.parameters()]

    @property
    def stride(self) -> int:
        """Total down-sampling factor: H and W are padded to a multiple of this."""
        return self.downsample * 2 ** self.stages_n

    def check_input(self, x: Tensor) -> None:
        """ConfigError unless x is [N, in_channels, H, W]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"model=fcn takes [N,{self.in_channels},H,W] images, got {list(x.shape)}: set "
                              f"model.in_channels to the data's channels")

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
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
        return crop_to(score, h, w)
