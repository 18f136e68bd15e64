"""torchvision's classifiers as U-Net encoders: the stage outputs of ResNet (He et al., "Deep Residual Learning for
Image Recognition", CVPR 2016) and VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR 2015) are the skips of a U-Net decoder, as in Iglovikov & Shvets, "TernausNet" (2018).

ResNet: stem (conv1, bn1, relu; stride 2), maxpool + layer1 (4), layer2 (8), layer3 (16), layer4 (32).
VGG: the convolutions between its max-pools (strides 1, 2, 4, 8, 16); its last pool and classifier are left out.
The modules are torchvision's own (loaded with its weights before the stages are taken), so the encoder's tensors
are the weights file's.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .pretrained import grey_stem, load_fitting, pretrained_state

FAMILIES = ("resnet", "resnext", "wide_resnet", "vgg")


def _stages(arch: str, net: nn.Module) -> "tuple[list[nn.Module], str]":
    """The encoder's stages of torchvision's `net`, and the name of its first convolution's weight."""
    if arch.startswith("vgg"):
        layers = list(net.features)
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        bounds = [0, *pools[:-1]]  # a stage starts with the previous stage's pool
        return [nn.Sequential(*layers[a:b]) for a, b in zip(bounds, pools)], "features.0.weight"
    return [nn.Sequential(net.conv1, net.bn1, net.relu), nn.Sequential(net.maxpool, net.layer1),
            net.layer2, net.layer3, net.layer4], "conv1.weight"


class TorchvisionEncoder(nn.Module):
    """The stage outputs (finest first) of torchvision's `arch`, for `in_channels` inputs; pretrained with
    `weights` (a torchvision weights name or a state-dict file; 1-channel inputs get the summed RGB stem)."""

    def __init__(self, arch: str, in_channels: int = 3, weights: Optional[str] = None) -> None:
        super().__init__()
        from torchvision import models

        if not arch.startswith(FAMILIES) or arch not in models.list_models(module=models):
            names = [m for m in models.list_models(module=models) if m.startswith(FAMILIES)]
            raise ConfigError(f"model.encoder={arch} is not a torchvision encoder cnnlab can take: use one of "
                              f"{', '.join(names)} (or model.encoder=null for the paper's U-Net)")
        net = models.get_model(arch, weights=None)
        stem_name = "features.0" if arch.startswith("vgg") else "conv1"
        if in_channels != 3:  # a stem for the data's channels (its kernels summed from RGB ones when pretrained)
            old = net.get_submodule(stem_name)
            new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                            bias=old.bias is not None)
            parent, _, leaf = stem_name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, leaf, new)
        stages, stem = _stages(arch, net)
        if weights:
            state = grey_stem(pretrained_state(arch, weights, "model.encoder_weights"), stem, in_channels,
                              "model.encoder_weights")
            load_fitting(net, state, "model.encoder_weights", weights)
        self.stages = nn.ModuleList(stages)
        with torch.no_grad():  # the stages' widths and strides, from one small input
            x, sizes = torch.zeros(1, in_channels, 64, 64), []
            for stage in self.stages.eval():
                x = stage(x)
                sizes.append((x.shape[1], 64 // x.shape[-1]))
        self.train()
        self.channels, self.strides = [c for c, _ in sizes], [s for _, s in sizes]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
