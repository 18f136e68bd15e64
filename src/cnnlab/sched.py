"""Learning-rate schedules, all stepped once per optimisation step: none, step, cosine (with warm-up), one-cycle."""
from __future__ import annotations

import math
import warnings

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from .errors import ConfigError

NAMES = ("none", "step", "cosine", "onecycle")
RANGES = {  # setting: (the valid range in words, the test)
    "warmup_epochs": (">= 0", lambda v: v >= 0),
    "step_epochs": ("a whole number >= 1", lambda v: v >= 1 and float(v).is_integer()),
    "gamma": ("> 0", lambda v: v > 0),
    "min_lr_ratio": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "pct_start": ("in (0, 1)", lambda v: 0 < v < 1),
    "div_factor": ("> 0", lambda v: v > 0),
    "final_div_factor": ("> 0", lambda v: v > 0),
}


def build_scheduler(optimizer: Optimizer, total_steps: int, steps_per_epoch: int, name: str = "none",
                    warmup_epochs: float = 0.0, step_epochs: int = 30, gamma: float = 0.1,
                    min_lr_ratio: float = 0.0, pct_start: float = 0.3, div_factor: float = 25.0,
                    final_div_factor: float = 1e4) -> LRScheduler:
    """A per-step scheduler; epochs-based settings are converted with `steps_per_epoch`."""
    if name not in NAMES:
        raise ConfigError(f"sched.name={name} is not known: choose one of {', '.join(NAMES)}")
    values = {"warmup_epochs": warmup_epochs, "step_epochs": step_epochs, "gamma": gamma, "min_lr_ratio": min_lr_ratio,
              "pct_start": pct_start, "div_factor": div_factor, "final_div_factor": final_div_factor}
    for key, (valid, ok) in RANGES.items():
        if not ok(values[key]):
            raise ConfigError(f"sched.{key}={values[key]} is not valid: it must be {valid}")
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(total_steps, 2), pct_start=pct_start,
                          div_factor=div_factor, final_div_factor=final_div_factor)
    warmup = int(round(warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "step":
            return gamma ** (step // max(1, step_epochs * steps_per_epoch))
        if name == "cosine":
            t = (step - warmup) / max(1, total_steps - warmup)
            return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return 1.0

    return LambdaLR(optimizer, factor)


def fast_forward(scheduler: LRScheduler, step: int) -> None:
    """Put a freshly built scheduler at `step`, with the learning rate (and momentum) it gives there."""
    scheduler.last_epoch = step - 1
    with warnings.catch_warnings():  # 'lr_scheduler.step() before optimizer.step()': intended here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
