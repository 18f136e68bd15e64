"""The schema of cnnlab's configs (`schema: train|eval|predict` in configs/), in Hydra's ConfigStore: a wrong type,
unknown key or choice fails at composition; ranges are checked in `trainer_settings`. The model, data, optim, sched
and loss groups' YAML files are their own schema; build.py checks their types against the target's signature."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from .errors import ConfigError


class Choice(str, Enum):
    """A config value from a fixed list; it prints and compares as its text."""

    def __str__(self) -> str:
        return str(self.value)


Mode = Choice("Mode", {"max": "max", "min": "min"})
Amp = Choice("Amp", {"bf16": "bf16", "fp16": "fp16"})
Init = Choice("Init", {"default": "default", "xavier": "xavier", "kaiming": "kaiming"})
Split = Choice("Split", {"test": "test", "val": "val", "train": "train"})


@dataclass
class TrainerConfig:
    """The `trainer` group (configs/trainer/default.yaml holds the documented defaults)."""

    epochs: int = 30
    budget_min: Optional[float] = None      # minutes of training: after epoch 1, epochs are cut to what fits
    batch_size: int = 32
    eval_batch_size: int = 1000
    drop_last: bool = False
    device: str = "auto"                    # auto | cpu | cuda | cuda:N
    amp: Optional[Amp] = None               # bf16 | fp16 | null
    compile: Any = False                    # false | true (inductor) | a torch.compile backend name
    channels_last: bool = False
    sync_bn: bool = False
    deterministic: bool = False
    clip_grad: float = 0.0
    ema: float = 0.0
    log_every: int = 50
    monitor: str = "val/acc"
    mode: Mode = Mode.max
    pictures_every: int = 5
    smoothgrad: int = 0
    histograms_every: int = 0
    eval_tile: int = 0
    eval_overlap: int = 64
    tta: bool = False
    tensorboard: bool = True
    progress: Optional[bool] = None
    num_workers: int = 2
    freeze_backbone_epochs: int = 0         # fine-tuning: the pretrained part is frozen for these first epochs

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            _at_least(f"trainer.{key}", getattr(self, key), 1)
        for key in ("clip_grad", "pictures_every", "num_workers", "smoothgrad", "histograms_every", "eval_tile",
                    "eval_overlap", "freeze_backbone_epochs"):
            _at_least(f"trainer.{key}", getattr(self, key), 0)
        if self.budget_min is not None and not 0 < self.budget_min < math.inf:
            raise ConfigError(f"trainer.budget_min={self.budget_min} is not valid: give minutes > 0, or null for "
                              f"no budget")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"trainer.ema={self.ema} is not valid: use 0 (off) or a decay in (0, 1), e.g. 0.999")
        if not isinstance(self.compile, (bool, str)):
            raise ConfigError(f"trainer.compile={self.compile} is not valid: use false, true or a backend name")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}={value} is not valid: it must be >= {low}")


@dataclass
class PathsConfig:
    data_dir: str = "data"
    output_dir: str = "outputs"


@dataclass
class TrainConfig:
    """`cnnlab-train` (configs/train.yaml)."""

    model: Any = MISSING
    data: Any = MISSING
    optim: Any = MISSING
    sched: Any = MISSING
    loss: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    name: str = "run"
    seed: int = 0
    init: Init = Init.default
    ckpt_path: Optional[str] = None
    resume: Any = False                     # false | true | auto (checked in commands.training.resume_path)
    init_from: Optional[str] = None         # start from the matching weights of another run's checkpoint
    optimized_metric: str = "val/acc"


@dataclass
class EvalConfig(TrainConfig):
    """`cnnlab-eval` and `cnnlab-viz` (configs/eval.yaml)."""

    split: Split = Split.test
    out_dir: Optional[str] = None
    num_images: int = 16
    layer: Optional[str] = None
    top: int = 8
    channels: int = 16
    maximise: bool = False
    layer_images: int = 2000


@dataclass
class PredictConfig(TrainConfig):
    """`cnnlab-predict` (configs/predict.yaml)."""

    input: Optional[str] = None
    output: Optional[str] = None
    batch_size: int = 64
    device: Optional[str] = None
    text: Optional[str] = None
    overlays: bool = False
    submission: Optional[str] = None


def own_keys(schema: type) -> tuple[str, ...]:
    """A command's own options: the keys of its schema beyond train's (never taken from a checkpoint's config)."""
    return tuple(k for k in schema.__dataclass_fields__ if k not in TrainConfig.__dataclass_fields__) + ("ckpt_path",)


_store = ConfigStore.instance()
for _name, _node in (("train", TrainConfig), ("eval", EvalConfig), ("predict", PredictConfig)):
    _store.store(group="schema", name=_name, node=_node, package="_global_")
_store.store(group="trainer", name="schema", node=TrainerConfig)  # trainer/default.yaml starts from it, so the
# group stays typed in a primary config of the user's own that drops the top-level schema (`override schema: null`)


def trainer_settings(node: Any) -> TrainerConfig:
    """The trainer group as a TrainerConfig, ranges checked (types were checked when the config was composed)."""
    unknown = [k for k in node if k not in TrainerConfig.__dataclass_fields__]  # `+trainer.foo=1` adds past Hydra
    if unknown:
        raise ConfigError(f"trainer.{unknown[0]} is not a trainer setting: valid keys are "
                          f"{', '.join(TrainerConfig.__dataclass_fields__)}")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainerConfig), node))


def check_at_least(cfg: Any, minimum: dict[str, int]) -> None:
    """A command's own counts against their minimum (`num_images=0`), each named alone."""
    for key, low in minimum.items():
        _at_least(key, cfg[key], low)
