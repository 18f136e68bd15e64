"""Console entry points: `cnnlab-train`, `cnnlab-eval`, `cnnlab-viz` (Hydra apps over configs/)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .errors import ConfigError

log = logging.getLogger("cnnlab")


def _config_dir() -> str:
    """configs/ inside the installed package (wheel), else the repository's top-level configs/ (editable)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "configs", here.parents[1] / "configs"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise RuntimeError(f"cnnlab configs not found next to {here}: reinstall the package")


CONFIG_DIR = _config_dir()


def _config_error(exc: BaseException) -> "ConfigError | None":
    """The ConfigError behind `exc`, also when Hydra's instantiate wrapped it in its own exception."""
    while exc is not None:
        if isinstance(exc, ConfigError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _guard(fn, cfg: DictConfig):
    """Run `fn(cfg)`; a ConfigError (bad input) becomes one line on stderr and exit status 2."""
    try:
        return fn(cfg)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a user error
        err = _config_error(e)
        if err is None:
            raise
        line = str(err).strip().splitlines()[-1]  # a DataLoader worker wraps it in a traceback
        log.error(f"error: {line}")
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def train_cli(cfg: DictConfig) -> float:
    from .run import train
    from .runinfo import RunInfo

    return _guard(lambda c: train(c, RunInfo.from_hydra()), cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def eval_cli(cfg: DictConfig) -> None:
    from .evaluation import evaluate_checkpoint
    from .runinfo import RunInfo

    _guard(lambda c: evaluate_checkpoint(c, RunInfo.from_hydra()), cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def viz_cli(cfg: DictConfig) -> None:
    from .evaluation import visualise_checkpoint
    from .runinfo import RunInfo

    _guard(lambda c: visualise_checkpoint(c, RunInfo.from_hydra()), cfg)
