"""torchvision's ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) and VGG (Simonyan &
Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015) as U-Net encoders: their
stage outputs are a decoder's skips, as in Iglovikov & Shvets, "TernausNet" (2018)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .pretrained import grey_stem, load_fitting, pretrained_state

FAMILIES = ("resnet", "resnext", "wide_resnet", "vgg")


class TorchvisionEncoder(nn.Module):
    """The stage outputs (finest first) of torchvision's `arch` for `in_channels` inputs, pretrained with `weights`."""

    def __init__(self, arch: str, in_channels: int = 3, weights: Optional[str] = None) -> None:
        super().__init__()
        from torchvision import models

        if not arch.startswith(FAMILIES) or arch not in models.list_models(module=models):
            names = [m for m in models.list_models(module=models) if m.startswith(FAMILIES)]
            raise ConfigError(f"model.encoder={arch} is not a torchvision encoder cnnlab can take: use one of "
                              f"{', '.join(names)} (or model.encoder=null for the paper's U-Net)")
        net = models.get_model(arch, weights=None)
        stem = "features.0" if arch.startswith("vgg") else "conv1"
        if in_channels != 3:  # a stem for the data's channels (its kernels summed from RGB ones when pretrained)
            old = net.get_submodule(stem)
            net.set_submodule(stem, nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                              bias=old.bias is not None))
        if arch.startswith("vgg"):  # the convolutions between its max-pools (strides 1 to 16); no last pool
            layers = list(net.features)
            pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
            bounds = [0, *pools[:-1]]  # a stage starts with the previous stage's pool
            stages = [nn.Sequential(*layers[a:b]) for a, b in zip(bounds, pools)]
        else:  # ResNet: stem (stride 2), maxpool + layer1 (4), layer2 (8), layer3 (16), layer4 (32)
            stages = [nn.Sequential(net.conv1, net.bn1, net.relu), nn.Sequential(net.maxpool, net.layer1),
                      net.layer2, net.layer3, net.layer4]
        if weights:  # loaded into torchvision's modules, so the encoder's tensors are the weights file's
            key = "model.encoder_weights"
            load_fitting(net, grey_stem(pretrained_state(arch, weights, key), f"{stem}.weight", in_channels, key),
                         key, weights)
        self.stages = nn.ModuleList(stages)
        with torch.no_grad():  # the stages' widths and strides, from one small input
            outs = self.eval()(torch.zeros(1, in_channels, 64, 64))
        self.train()
        self.channels, self.strides = [y.shape[1] for y in outs], [64 // y.shape[-1] for y in outs]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
