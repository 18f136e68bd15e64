"""The linear classifier s = W x + b of the pre-CNN pipeline (SVM, logistic regression or least squares).

Which of the three it is depends only on the configured loss: MulticlassHinge (Cortes & Vapnik 1995; Crammer &
Singer 2001), cross-entropy (logistic regression) or SquaredError (least squares); the l2 penalty is weight decay.
"""
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
