"""Console entry points: `cnnlab-train`, `cnnlab-eval`, `cnnlab-viz`, `cnnlab-predict` (Hydra apps over configs/).

A mistake the user made ends in one `error:` line and exit status 2; a bug shows its traceback. In a multirun a
failed job is recorded in its folder (`failed.json`) and the sweep goes on; the sweep's exit status is the number
of failed jobs. A stop signal (SIGTERM, SIGUSR1, Ctrl-C) checkpoints at the next step and says how to resume.
"""
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
from omegaconf import DictConfig

from . import cmdline, distributed
from .build import CONFIG_DIR
from .checkpoint import holds_run
from .engine import STOP, TrainingStopped
from .errors import RunFolderRefused, find_config_error, typed_override
from .sweep import FAILED_JOBS, SWEEP_DIRS

log = logging.getLogger("cnnlab")
__all__ = ["CONFIG_DIR", "train_cli", "eval_cli", "viz_cli", "predict_cli"]


def _to_log_file(message: str) -> None:
    """Put `message` in the run's log file only (the console gets it once, on stderr)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(record)


def _job() -> "tuple[Path, bool]":
    """(this job's output folder, whether it is one job of a multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN


def _write_failed(run_dir: Path, cfg: DictConfig, error: str) -> None:
    """failed.json: why the run failed, with its name and overrides (read by the sweep table and cnnlab-compare)."""
    from hydra.core.hydra_config import HydraConfig

    record = {"status": "failed", "error": error, "experiment": str(cfg.get("name") or ""),
              "overrides": list(HydraConfig.get().overrides.task)}
    (run_dir / "failed.json").write_text(json.dumps(record, indent=2))


def _resume_hint(run_dir: Path) -> str:
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return f"continue with: cnnlab-train resume=true {typed_override('hydra.run.dir', run_dir)}"
    return "no checkpoint was written yet"


def _only_start_up_files(run_dir: Path) -> bool:
    """True when the folder holds nothing but what Hydra and the lock wrote at start-up."""
    return run_dir.is_dir() and all(p.name in (".hydra", ".cnnlab.lock") or p.suffix == ".log"
                                    for p in run_dir.iterdir())


def _forget_or_mark(run_dir: Path, cfg: DictConfig, error: str, before_training: bool = False) -> None:
    """A run that failed before writing anything, or before training in a folder it made, leaves no folder behind;
    one that a bad value stopped before it trained in a folder that holds an earlier run leaves that run's record
    as it was (the error is in its log); any other says why it failed (failed.json)."""
    from .runguard import FRESH, keep_launch_record

    if before_training and holds_run(run_dir):
        keep_launch_record(run_dir)
        return
    if _only_start_up_files(run_dir) or (before_training and run_dir.resolve() in FRESH):
        shutil.rmtree(run_dir, ignore_errors=True)  # only start-up files, or a folder this command made
        root = Path(str(cfg.get("paths", {}).get("output_dir", "outputs"))).resolve()
        parent = run_dir.resolve().parent
        while parent != root and root in parent.parents and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    elif run_dir.is_dir():
        _write_failed(run_dir, cfg, error)


def _quiet_other_ranks() -> None:
    """Data-parallel ranks other than 0: no log file (rank 0 writes train.log), warnings only on the console."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
        else:
            handler.setLevel(logging.WARNING)


def _guard(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run `fn(cfg)` and report how it ended (see the module docstring)."""
    _command_starts()
    run_dir, multirun = _job()
    if not distributed.WORLD.main:
        _quiet_other_ranks()
    try:
        return fn(cfg)
    except TrainingStopped as e:
        message = f"stopped by {e.signal_name} {e.where}; {_resume_hint(run_dir)}"
        _to_log_file(message)
        print(message, file=sys.stderr)
        STOP.forward()  # e.g. submitit's SIGUSR1 handler: requeue the SLURM job
        sys.exit(128 + getattr(signal, e.signal_name, signal.SIGTERM).value)
    except KeyboardInterrupt:
        message = f"interrupted; {_resume_hint(run_dir)}"
        _to_log_file(message)
        print(message, file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a user error or one job of a sweep
        err = find_config_error(e)
        line = "error: " + str(err).strip().splitlines()[-1] if err is not None else None
        if isinstance(err, RunFolderRefused):  # another run's folder: report, and touch nothing in it
            print(line, file=sys.stderr)
            if multirun:
                return None
            sys.exit(2)
        if multirun:  # record the failure in the job's folder and let the sweep go on
            if line is None:
                log.error("job failed with a bug in cnnlab (traceback below)\n" + traceback.format_exc())
            else:
                log.error(line)
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


class _HeldStderr:
    """Stands in for sys.stderr while Hydra reads the command line: what Hydra prints about a refused key is held,
    so that one line naming the valid keys can replace it (`_run`); once the command runs, writes pass through."""

    def __init__(self, real: Any) -> None:
        self.real, self.held, self.passing = real, [], False

    def write(self, text: str) -> int:
        if self.passing:
            return self.real.write(text)
        self.held.append(text)
        return len(text)

    def release(self, show: bool = True) -> None:
        """Pass writes through from now on; print what was held (unless `show` is false)."""
        if not self.passing:
            self.passing = True
            if show and self.held:
                self.real.write("".join(self.held))
                self.real.flush()
            self.held = []
        if sys.stderr is self:
            sys.stderr = self.real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


_stderr_hold: "_HeldStderr | None" = None


def _command_starts() -> None:
    """Hydra has accepted the command line: stop holding stderr (see _HeldStderr)."""
    if _stderr_hold is not None:
        _stderr_hold.release()


def _remove_unused_sweep_folder() -> None:
    """A multirun Hydra refused before any job ran leaves no folder: Hydra made the sweep's folder and wrote
    multirun.yaml in it first. Its parents up to `multirun/` go too when empty (cnnlab's layout of sweeps)."""
    for sweep_dir in SWEEP_DIRS:
        if not sweep_dir.is_dir() or [p.name for p in sweep_dir.iterdir()] != ["multirun.yaml"]:
            continue
        shutil.rmtree(sweep_dir)
        tops = [p for p in sweep_dir.parents if p.name == "multirun"]
        for parent in sweep_dir.parents if tops else []:
            if any(parent.iterdir()):
                break
            parent.rmdir()
            if parent == tops[0]:
                break


def _run(main: Callable[[], Any], config_name: str) -> None:
    """Run a Hydra main; when Hydra refused the command line for a misspelt key, one line naming the valid keys
    stands in for Hydra's message."""
    global _stderr_hold
    items = [a for a in sys.argv[1:] if "=" in a and not a.startswith(("-", "+", "~", "hydra"))]
    line = cmdline.unknown_choice_line(items)
    if line is not None:  # before Hydra: a multirun would make its sweep folder first
        print(line, file=sys.stderr)
        sys.exit(2)
    cmdline.add_checkpoint_choices(config_name)
    _stderr_hold = hold = _HeldStderr(sys.stderr)
    sys.stderr = hold
    SWEEP_DIRS.clear()
    try:
        main()
    except SystemExit as e:
        if e.code not in (0, None) and not hold.passing:
            _remove_unused_sweep_folder()
            line = cmdline.refused_key_line(config_name)
            if line is not None:
                hold.release(show=False)
                print(line, file=sys.stderr)
                sys.exit(2)
        raise
    finally:
        hold.release()
        _stderr_hold = None


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def _train_main(cfg: DictConfig) -> "float | None":
    from .commands import train
    from .report import RunInfo

    return _guard(lambda c: train(c, RunInfo.from_hydra()), cfg)


def _join_torchrun() -> None:
    """Under torchrun: join the process group and give every rank the run folder rank 0 names."""
    if any(a in ("-m", "--multirun") for a in sys.argv[1:]):
        print("error: torchrun runs one training; for sweeps use cnnlab-train -m with a Hydra launcher "
              "(e.g. hydra/launcher=slurm)", file=sys.stderr)
        sys.exit(2)
    distributed.init()
    stamp = distributed.shared_stamp()
    if not any(a.startswith("hydra.run.dir=") for a in sys.argv[1:]):
        name = cmdline.continued_name() or "${name}"
        cmdline.add_overrides([f"hydra.run.dir=${{paths.output_dir}}/{name}/{stamp}"])


def train_cli() -> None:
    """`cnnlab-train` (and `torchrun ... -m cnnlab.train`): train, test and report (returns `optimized_metric` to
    a sweeper); after a multirun the exit status is the number of failed jobs."""
    FAILED_JOBS.clear()
    cmdline.check_run_name()
    if distributed.launched_by_torchrun():
        _join_torchrun()
    else:
        name = cmdline.continued_name()
        if name is not None:
            cmdline.add_overrides([f"hydra.run.dir=${{paths.output_dir}}/{name}/${{now:%Y-%m-%d_%H-%M-%S_%f}}"])
    try:
        _run(_train_main, "train")
    except BaseException:
        distributed.shutdown()  # no barrier: the other ranks may be anywhere (torchrun ends them)
        raise
    distributed.barrier()  # every rank done before the group goes away
    distributed.shutdown()
    if FAILED_JOBS:
        sys.exit(min(len(FAILED_JOBS), 125))


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def _eval_main(cfg: DictConfig) -> None:
    from .commands import evaluate_checkpoint
    from .report import RunInfo

    _guard(lambda c: evaluate_checkpoint(c, RunInfo.from_hydra()), cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
def _viz_main(cfg: DictConfig) -> None:
    from .commands import visualise_checkpoint
    from .report import RunInfo

    _guard(lambda c: visualise_checkpoint(c, RunInfo.from_hydra()), cfg)


_predict_text: "str | None" = None  # the sentence of `cnnlab-predict text=...`, as typed (predict_cli)


@hydra.main(config_path=CONFIG_DIR, config_name="predict", version_base="1.3")
def _predict_main(cfg: DictConfig) -> None:
    from .commands import predict
    from .report import RunInfo

    _guard(lambda c: predict(c, RunInfo.from_hydra(), text=_predict_text), cfg)


def eval_cli() -> None:
    """`cnnlab-eval ckpt_path=...`: a checkpoint's metrics on a split, written to metrics.json."""
    _run(_eval_main, "eval")


def viz_cli() -> None:
    """`cnnlab-viz ckpt_path=...`: a checkpoint's filters, saliency, confusion and mistakes (or overlays) as PNGs."""
    _run(_viz_main, "eval")


def predict_cli() -> None:
    """`cnnlab-predict ckpt_path=... input=... output=...`: apply a trained model to new files (a sentence model
    also to one sentence, `text="..."`, taken as typed)."""
    global _predict_text
    _predict_text = cmdline.take_text_argument()
    _run(_predict_main, "predict")
