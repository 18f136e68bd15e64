"""The lecture's small problems, generated and seeded: 2-D two-class point sets where a linear classifier fails
and an MLP succeeds (scikit-learn's moons and circles), and a noisy 1-D function for the least-squares recap."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .common import DataBundle, TensorSplit
from .splits import image_split

FUNCTIONS = {"sin": lambda x: torch.sin(math.pi * x), "cubic": lambda x: x ** 3 - x}


def _splits(x: Tensor, y: Tensor, val_fraction: float, test_fraction: float, seed: int) -> list[TensorSplit]:
    return [TensorSplit(x[i], y[i]) for i in image_split(len(x), val_fraction, test_fraction, seed, "points")]


def build_points(kind: str = "moons", num_samples: int = 600, noise: float = 0.15, factor: float = 0.5,
                 val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> DataBundle:
    """Two interleaving half-moons, or two concentric circles (radius ratio `factor`): 2-D points, 2 classes."""
    from sklearn.datasets import make_circles, make_moons

    if kind not in ("moons", "circles"):
        raise ConfigError(f"data.kind={kind} is not known: use moons or circles")
    if num_samples < 10:
        raise ConfigError(f"data.num_samples={num_samples}: use at least 10 points")
    x, y = make_moons(num_samples, noise=noise, random_state=seed) if kind == "moons" else \
        make_circles(num_samples, noise=noise, factor=factor, random_state=seed)
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    train, val, test = _splits(x, y, val_fraction, test_fraction, seed)
    return DataBundle(train, val, test, num_classes=2, class_names=["class 0", "class 1"],
                      model_kwargs={"in_features": 2}, name=kind, state={"input": "points"})


def poly_features(x: Tensor, degree: int, basis: str = "legendre") -> Tensor:
    """[N] -> [N, degree]: Legendre P_1(x), ..., P_degree(x) (or x, ..., x^degree); the constant is the model's bias."""
    # on [-1, 1] the Legendre basis is far better conditioned: gradient descent gets close to least squares
    if basis == "monomial":
        return torch.stack([x ** k for k in range(1, degree + 1)], 1)
    if basis != "legendre":
        raise ConfigError(f"data.basis={basis} is not known: use legendre or monomial")
    return torch.from_numpy(np.polynomial.legendre.legvander(x.cpu().numpy(), degree)[:, 1:]).to(x)


def build_poly1d(function: str = "sin", degree: int = 3, num_samples: int = 30, noise: float = 0.2,
                 val_fraction: float = 0.3, test_fraction: float = 0.3, seed: int = 0,
                 basis: str = "legendre") -> DataBundle:
    """Regression on y = f(x) + N(0, noise^2), x uniform in [-1, 1], as unstandardised polynomial features."""
    if function not in FUNCTIONS:
        raise ConfigError(f"data.function={function} is not known: use one of {', '.join(FUNCTIONS)}")
    if degree < 1:
        raise ConfigError(f"data.degree={degree}: use a degree of at least 1")
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(num_samples, generator=gen) * 2 - 1
    y = FUNCTIONS[function](x) + noise * torch.randn(num_samples, generator=gen)
    # features not standardised: the fitted weights are the polynomial's coefficients in `basis`
    train, val, test = _splits(poly_features(x, degree, basis), y.unsqueeze(1), val_fraction, test_fraction, seed)
    return DataBundle(train, val, test, num_classes=1, class_names=["y"], model_kwargs={"in_features": degree},
                      task="regression", name=f"poly1d_{function}",
                      state={"input": "poly1d", "degree": degree, "function": function, "basis": basis})
