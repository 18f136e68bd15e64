"""Random class-conditional images (or their flattened vectors) for smoke tests and benchmarks: no files."""
from __future__ import annotations

import torch

from .common import DataBundle, TensorSplit
from .imageio import image_state


def build_synthetic(num_samples: int = 256, channels: int = 1, size: int = 32, num_classes: int = 10,
                    seed: int = 0, flat: bool = False, root: "str | None" = None) -> DataBundle:  # noqa: ARG001
    """Gaussian noise plus a per-class template, as images (or `flat` vectors); the same tensors each call."""
    gen = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, channels, size, size, generator=gen)

    def split(n: int) -> TensorSplit:
        y = torch.randint(0, num_classes, (n,), generator=gen)
        x = templates[y] + torch.randn(n, channels, size, size, generator=gen)
        return TensorSplit(x.flatten(1) if flat else x, y)

    train, val, test = split(num_samples), split(max(num_samples // 4, 2)), split(max(num_samples // 4, 2))
    offered = {"in_features": channels * size * size} if flat else {"in_channels": channels}
    state = {"input": "vectors"} if flat else image_state(channels, (size, size), resize=True)
    return DataBundle(train, val, test, num_classes=num_classes, class_names=[str(c) for c in range(num_classes)],
                      model_kwargs=offered, mean=(0.0,) * channels, std=(1.0,) * channels, name="synthetic",
                      state=state)
