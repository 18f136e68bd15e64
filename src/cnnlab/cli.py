"""Console entry points: `cnnlab-train`, `cnnlab-eval`, `cnnlab-viz` (Hydra apps over configs/)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .errors import find_config_error

log = logging.getLogger("cnnlab")


def _config_dir() -> str:
    """configs/ inside the installed package (wheel), else the repository's top-level configs/ (editable)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "configs", here.parents[1] / "configs"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise RuntimeError(f"cnnlab configs not found next to {here}: reinstall the package")


CONFIG_DIR = _config_dir()


def _to_log_file(message: str) -> None:
    """Put `message` in the run's log file only (the console gets it once, on stderr)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(record)


def _interrupted() -> str:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return f"interrupted; continue with: cnnlab-train resume=true hydra.run.dir={run_dir}"
    return "interrupted before the first checkpoint was written"


def _guard(fn, cfg: DictConfig):
    """Run `fn(cfg)`; a ConfigError (bad input) becomes one line on stderr and exit status 2; Ctrl-C says how
    to resume."""
    try:
        return fn(cfg)
    except KeyboardInterrupt:
        message = _interrupted()
        _to_log_file(message)
        print(message, file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a user error
        err = find_config_error(e)
        if err is None:
            raise
        line = "error: " + str(err).strip().splitlines()[-1]  # a DataLoader worker wraps it in a traceback
        _to_log_file(line)
        print(line, file=sys.stderr)
        sys.exit(2)


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def train_cli(cfg: DictConfig) -> float:
    """`cnnlab-train`: train, test and report; returns `optimized_metric` (for sweepers)."""
    from .run import train
    from .runinfo import RunInfo

    return _guard(lambda c: train(c, RunInfo.from_hydra()), cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def eval_cli(cfg: DictConfig) -> None:
    """`cnnlab-eval ckpt_path=...`: a checkpoint's metrics on a split, written to metrics.json."""
    from .evaluation import evaluate_checkpoint
    from .runinfo import RunInfo

    _guard(lambda c: evaluate_checkpoint(c, RunInfo.from_hydra()), cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def viz_cli(cfg: DictConfig) -> None:
    """`cnnlab-viz ckpt_path=...`: a checkpoint's filters, saliency, confusion and mistakes as PNG files."""
    from .evaluation import visualise_checkpoint
    from .runinfo import RunInfo

    _guard(lambda c: visualise_checkpoint(c, RunInfo.from_hydra()), cfg)
