"""Console entry points `cnnlab-train`, `-eval`, `-viz`, `-predict`: a user's mistake is one `error:` line (exit 2), a
bug a traceback; a failed multirun job writes failed.json and the sweep goes on (exit status: the failed jobs); a
stop signal (SIGTERM, SIGUSR1, Ctrl-C) checkpoints at the next step and says how to resume."""
from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from . import distributed, rundir, schema  # noqa: F401 - rundir's resolvers and the schema, before Hydra reads
from .build import CONFIG_DIR
from .engine import STOP, TrainingStopped
from .errors import ConfigError, RunFolderRefused, find_config_error, typed_override
from .trust import user_config_dirs

log = logging.getLogger("cnnlab")
__all__ = ["CONFIG_DIR", "train_cli", "eval_cli", "viz_cli", "predict_cli"]


def _to_log_file(message: str) -> None:
    """Put `message` in the run's log file only (the console gets it once, on stderr)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(record)


def _write_failed(run_dir: Path, cfg: DictConfig, error: str) -> None:
    """failed.json: why the run failed, with its name and overrides (read by the sweep table and cnnlab-compare)."""
    record = {"status": "failed", "error": error, "experiment": str(cfg.get("name") or ""),
              "overrides": list(HydraConfig.get().overrides.task)}
    (run_dir / "failed.json").write_text(json.dumps(record, indent=2))


def _take_back_own_record(run_dir: Path) -> None:
    """Remove Hydra's record of this command (`.hydra/`, or `.hydra/<time>/`); the log keeps the error line."""
    subdir = HydraConfig.get().output_subdir
    if subdir:
        shutil.rmtree(run_dir / subdir, ignore_errors=True)


def _forget_or_mark(run_dir: Path, cfg: DictConfig, error: str, before_training: bool = False) -> None:
    """Remove a failed run's folder if it holds nothing else; else take back its own record, or write failed.json."""
    hc = HydraConfig.get()
    first = hc.output_subdir == ".hydra"  # the folder held no command's record before this one's (cnnlab.rundir)
    made_here = first and not any(str(o).startswith("hydra.run.dir=") for o in hc.overrides.hydra)  # Hydra named it
    start_up_only = run_dir.is_dir() and all(p.name in (".hydra", ".cnnlab.lock") or p.suffix == ".log"
                                             for p in run_dir.iterdir())  # what Hydra and the lock wrote at start-up
    if (first and start_up_only) or (before_training and made_here):
        shutil.rmtree(run_dir, ignore_errors=True)  # only this command's start-up files, or a folder it made
        root = Path(str(cfg.get("paths", {}).get("output_dir", "outputs"))).resolve()
        parent = run_dir.resolve().parent
        while parent != root and root in parent.parents and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    elif before_training:
        _take_back_own_record(run_dir)
    elif run_dir.is_dir():
        _write_failed(run_dir, cfg, error)


def _guard(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run `fn(cfg)` and report how it ended (see the module docstring)."""
    hc = HydraConfig.get()
    run_dir, multirun = Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN
    for folder in user_config_dirs():  # a --config-dir's own .py files (a model of the user's) are importable
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if not distributed.WORLD.main:  # other ranks: no log file (rank 0 writes train.log), warnings only on the console
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)
            else:
                handler.setLevel(logging.WARNING)
    try:
        if distributed.WORLD.active and multirun:  # a torchrun group is only ever joined by cnnlab-train
            raise ConfigError("torchrun runs one training; for sweeps use cnnlab-train -m with a Hydra launcher "
                              "(e.g. hydra/launcher=slurm)")
        return fn(cfg)
    except (TrainingStopped, KeyboardInterrupt) as e:
        stopped = isinstance(e, TrainingStopped)
        hint = (f"continue with: cnnlab-train resume=true {typed_override('hydra.run.dir', run_dir)}"
                if (run_dir / "checkpoints" / "last.pt").is_file() else "no checkpoint was written yet")
        message = (f"stopped by {e.signal_name} {e.where}" if stopped else "interrupted") + f"; {hint}"
        _to_log_file(message)
        print(message, file=sys.stderr)
        if not stopped:
            sys.exit(130)
        STOP.forward()  # e.g. submitit's SIGUSR1 handler: requeue the SLURM job
        sys.exit(128 + getattr(signal, e.signal_name, signal.SIGTERM).value)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a user error or one job of a sweep
        err = find_config_error(e)
        line = "error: " + str(err).strip().splitlines()[-1] if err is not None else None
        if isinstance(err, RunFolderRefused):  # another run's folder: report, and take this command's record back
            print(line, file=sys.stderr)
            _take_back_own_record(run_dir)
            if multirun:
                return None
            sys.exit(2)
        if multirun:  # record the failure in the job's folder and let the sweep go on
            log.error(line or "job failed with a bug in cnnlab (traceback below)\n" + traceback.format_exc())
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_failed(run_dir, cfg, line or f"{type(e).__name__}: {e}")
            return None  # not a number: the Optuna sweeper records the trial as failed and goes on
        if line is None:  # a bug: its traceback goes to the log file too, then to the console (by Hydra)
            _to_log_file("job failed with a bug in cnnlab:\n" + traceback.format_exc())
            raise
        _to_log_file(line)
        print(line, file=sys.stderr)
        if distributed.WORLD.main:
            _forget_or_mark(run_dir, cfg, line, before_training=getattr(err, "before_training", False))
        sys.exit(2)


def _run_command(config_name: str, body: str) -> None:
    """The Hydra app over configs/<config_name>.yaml that runs `cnnlab.commands.<body>` under _guard."""
    @hydra.main(config_path=CONFIG_DIR, config_name=config_name, version_base="1.3")
    def main(cfg: DictConfig) -> Any:  # train's `optimized_metric` goes to a sweeper
        from . import commands
        from .report import RunInfo

        return _guard(lambda c: getattr(commands, body)(c, RunInfo.from_hydra()), cfg)

    main()


def train_cli() -> None:
    """`cnnlab-train` (and `torchrun ... -m cnnlab.train`): train, test and report `optimized_metric` to a sweeper."""
    distributed.init()  # under torchrun: join the process group (rank 0's time names the run folder)
    try:
        _run_command("train", "train")
    except BaseException:
        distributed.shutdown()  # no barrier: the other ranks may be anywhere (torchrun ends them)
        raise
    distributed.barrier()  # every rank done before the group goes away
    distributed.shutdown()


def eval_cli() -> None:
    """`cnnlab-eval ckpt_path=...`: a checkpoint's metrics on a split, written to results.json."""
    _run_command("eval", "evaluate_checkpoint")


def viz_cli() -> None:
    """`cnnlab-viz ckpt_path=...`: a checkpoint's filters, saliency, confusion and mistakes (or overlays) as PNGs."""
    _run_command("eval", "visualise_checkpoint")


def predict_cli() -> None:
    """`cnnlab-predict ckpt_path=... input=... output=...`: apply a trained model to new files (or to `text="..."`)."""
    _run_command("predict", "predict")
