"""torchvision's classification models by name, for comparison with the paper-faithful ones (e.g. its AlexNet: the
"one weird trick" variant of Krizhevsky 2014, 64/192/384/256/256 maps, no LRN, adaptive 6x6 pool)."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError, first_line
from .pretrained import load_fitting, pretrained_state


class TorchvisionClassifier(nn.Module):
    """`torchvision.models.get_model(arch, num_classes=..., **options)`, RGB input; pretrained with `weights`."""

    def __init__(self, arch: str, num_classes: int, in_channels: int = 3, options: Optional[dict] = None,
                 weights: Optional[str] = None) -> None:
        super().__init__()
        from torchvision import models

        if arch not in models.list_models(module=models):
            raise ConfigError(f"model.arch={arch} is not a torchvision classification model: e.g. alexnet, "
                              f"resnet18, vgg11 (torchvision.models.list_models())")
        if in_channels != 3:
            raise ConfigError(f"torchvision's {arch} takes RGB images and the data has {in_channels} channel(s): "
                              f"choose RGB data or one of cnnlab's models (model.in_channels)")
        self.arch, self.net = arch, models.get_model(arch, weights=None, num_classes=num_classes, **(options or {}))
        # the head, new for the data's classes: the last Linear/Conv2d; with `weights` all else starts pretrained
        self.head = [n for n, m in self.net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
        if weights:
            load_fitting(self.net, pretrained_state(arch, weights, "model.weights"), "model.weights", weights,
                         skip=self.head)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """All but the head (optim.backbone_lr_mult, trainer.freeze_backbone_epochs)."""
        head = {id(p) for p in self.net.get_submodule(self.head).parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    def check_input(self, x: Tensor) -> None:
        """ConfigError naming the sizes when torchvision's network cannot run on inputs of this size."""
        was = self.training
        try:  # torchvision's own code: its failure on our sizes is a mismatch, not a bug of ours
            with torch.no_grad():
                self.net.eval()(x[:1])
        except RuntimeError as e:
            raise ConfigError(f"model=torchvision_{self.arch} cannot take {'x'.join(map(str, x.shape[1:]))} inputs "
                              f"({first_line(e)}): resize the data (e.g. data.image_size=224) or use "
                              f"model=alexnet_small for 32x32 images") from None
        finally:
            self.net.train(was)

    def forward(self, x: Tensor) -> Any:
        return self.net(x)
