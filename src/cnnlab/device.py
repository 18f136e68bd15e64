"""Which device a run uses: decided once, here."""
from __future__ import annotations

import torch

from .errors import ConfigError


def select_device(name: str, key: str = "trainer.device") -> torch.device:
    """`auto` = CUDA when present, else CPU; CUDA asked for without one is an error naming `key`, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={name} but no CUDA device is visible: use {key}=auto or cpu")
    index = name.partition(":")[2]
    count = torch.cuda.device_count() if name.startswith("cuda") else 0
    if index.isdigit() and int(index) >= count:
        raise ConfigError(f"{key}={name} but this machine has {count} CUDA device{'s' if count > 1 else ''} "
                          f"(cuda:0 to cuda:{count - 1}): use {key}=cuda:N with N < {count}, or auto")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)  # a name torch parses may still be unusable here (e.g. mps on Linux)
        return device
    except (RuntimeError, AssertionError):
        raise ConfigError(f"{key}={name} is not usable here: use auto, cpu, cuda or cuda:N") from None


def available_memory() -> "int | None":
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None where that is not known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_model_fits(parameters: int, settings: str) -> None:
    """ConfigError naming `settings` when training a model of `parameters` weights would not fit the free memory."""
    # weights, gradients and two optimizer moments in float32; building it would end in a silent out-of-memory kill
    need, free = 16 * parameters, available_memory()
    if free is not None and need > free:
        raise ConfigError(f"{settings} make a model of {parameters / 1e6:,.0f}M weights, which needs about "
                          f"{need / 2**30:,.1f} GiB to train, and this machine has {free / 2**30:,.1f} GiB free: "
                          f"make it smaller")
