"""Which device a run uses: decided once, here."""
from __future__ import annotations

import torch

from .errors import ConfigError


def select_device(name: str) -> torch.device:
    """`auto` = CUDA when present, else CPU; asking for CUDA without one is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA device is visible: use trainer.device=auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"trainer.device={name} is not a device: use auto, cpu, cuda or cuda:N") from None
