"""The linear classifier s = W x + b: an SVM (MulticlassHinge; Cortes & Vapnik 1995, Crammer & Singer 2001), logistic
regression (cross-entropy) or least squares (SquaredError), by the configured loss; the l2 penalty is weight decay."""
from __future__ import annotations

from torch import Tensor, nn


class LinearClassifier(nn.Module):
    """Scores [N, num_classes] = W x + b for feature vectors [N, in_features] (other shapes are flattened)."""

    def __init__(self, in_features: int, num_classes: int, bias: bool = True, init_std: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes, bias=bias)
        # Zero init: every loss here is convex, so no symmetry needs breaking and runs are deterministic.
        if init_std > 0:
            nn.init.normal_(self.linear.weight, std=init_std)
        else:
            nn.init.zeros_(self.linear.weight)
        if bias:
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))
