"""Random class-conditional images for smoke tests and benchmarks (no files, no download)."""
from __future__ import annotations

import torch

from .common import DataBundle, TensorSplit


def build_synthetic(num_samples: int = 256, channels: int = 1, size: int = 32, num_classes: int = 10,
                    seed: int = 0) -> DataBundle:
    """Gaussian noise plus a per-class template, so that a model can learn something; same tensors each call."""
    gen = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, channels, size, size, generator=gen)
    def split(n: int) -> TensorSplit:
        y = torch.randint(0, num_classes, (n,), generator=gen)
        return TensorSplit(templates[y] + torch.randn(n, channels, size, size, generator=gen), y)

    train, val, test = split(num_samples), split(max(num_samples // 4, 2)), split(max(num_samples // 4, 2))
    return DataBundle(train, val, test, num_classes=num_classes, class_names=[str(c) for c in range(num_classes)],
                      model_kwargs={"in_channels": channels, "in_features": channels * size * size},
                      mean=(0.0,) * channels, std=(1.0,) * channels,
                      name="synthetic")
