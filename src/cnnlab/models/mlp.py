"""The multi-layer perceptron: affine layers with a non-linearity between them, on flattened inputs. Rumelhart,
Hinton & Williams, "Learning representations by back-propagating errors", Nature 1986."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn

from ..errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class MLP(nn.Module):
    """x -> flatten -> [Linear -> activation -> dropout] per hidden size -> Linear -> logits (or a regression)."""

    def __init__(self, num_classes: int, hidden: Sequence[int] = (256, 128), activation: str = "relu",
                 dropout: float = 0.0, in_features: Optional[int] = None,
                 in_channels: Optional[int] = None) -> None:  # noqa: ARG002 (images: width comes from the batch)
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation={activation} is not known: use one of {', '.join(ACTIVATIONS)}")
        if any(int(h) < 1 for h in hidden):
            raise ConfigError(f"model.hidden={list(hidden)}: every hidden layer needs at least one unit")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features  # None on images (the data offers only in_channels): a lazy first layer
        for h in hidden:
            layers += [nn.Linear(width, int(h)) if width else nn.LazyLinear(int(h)), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, num_classes) if width else nn.LazyLinear(num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
