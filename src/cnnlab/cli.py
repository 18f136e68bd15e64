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

from . import distributed
from .build import CONFIG_DIR
from .checkpoint import holds_run
from .engine import STOP, TrainingStopped
from .errors import RunFolderRefused, find_config_error
from .sweep import FAILED_JOBS

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
        return f"continue with: cnnlab-train resume=true hydra.run.dir={run_dir}"
    return "no checkpoint was written yet"


def _only_start_up_files(run_dir: Path) -> bool:
    """True when the folder holds nothing but what Hydra and the lock wrote at start-up."""
    return run_dir.is_dir() and all(p.name in (".hydra", ".cnnlab.lock") or p.suffix == ".log"
                                    for p in run_dir.iterdir())


def _forget_or_mark(run_dir: Path, cfg: DictConfig, error: str, before_training: bool = False) -> None:
    """A run that failed before writing anything, or before training in a folder it made, leaves no folder behind;
    one that a bad value stopped before it trained in a folder that holds an earlier run leaves that run's record
    as it was (the error is in its log); any other says why it failed (failed.json)."""
    from .runguard import FRESH

    if before_training and holds_run(run_dir):
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


def _explain_refused_key(config_name: str) -> None:
    """After Hydra refused the command line: for a `group.key=value` whose key does not exist, one line naming the
    valid keys of that group (Hydra's own message says only that the key is not in the config)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    items = [a for a in sys.argv[1:] if "=" in a and not a.startswith(("-", "+", "~", "hydra"))]
    groups = [a for a in items if "." not in a.split("=", 1)[0]]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            base = compose(config_name=config_name)
            unknown = [a for a in groups if a.split("=", 1)[0] not in base
                       and not (Path(CONFIG_DIR) / a.split("=", 1)[0]).is_dir()]  # experiment=, hparams_search=
            if unknown:  # a misspelt top-level key (resum=true): Hydra's message names it, this lists the valid ones
                valid = ", ".join(str(k) for k in base)
                print(f"error: {unknown[0].split('=', 1)[0]} is not a key of cnnlab's {config_name} config: valid "
                      f"keys are {valid} (+{unknown[0]} adds a new key)", file=sys.stderr)
                sys.exit(2)
            cfg = compose(config_name=config_name, overrides=groups)
    except Exception:  # noqa: BLE001 - the groups themselves are wrong: Hydra's message already says so
        return
    finally:
        GlobalHydra.instance().clear()
    missing = object()
    for item in items:
        key = item.split("=", 1)[0]
        parent = key.rpartition(".")[0]
        node = OmegaConf.select(cfg, parent) if parent else None
        if parent and OmegaConf.select(cfg, key, default=missing) is missing and OmegaConf.is_dict(node):
            valid = ", ".join(str(k) for k in node if not str(k).startswith("_"))
            print(f"error: {key} is not a key of {parent}: valid keys are {valid} (+{item} adds a new key)",
                  file=sys.stderr)
            sys.exit(2)


def _run(main: Callable[[], Any], config_name: str) -> None:
    """Run a Hydra main; when Hydra refused the command line, name the valid keys of a misspelt one."""
    try:
        main()
    except SystemExit as e:
        if e.code not in (0, None):
            _explain_refused_key(config_name)
        raise


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
        sys.argv.append(f"hydra.run.dir=${{paths.output_dir}}/${{name}}/{stamp}")


def _check_run_name() -> None:
    """`name=` names the run folder, paths.output_dir/<name>/<time>: a path separator or `..` in it would put the
    run elsewhere, so it is refused before Hydra creates the folder (a name set in a config file: RunFolderGuard)."""
    from .runguard import name_refusal

    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        reason = name_refusal(value) if key.lstrip("+") == "name" else None
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            sys.exit(2)


def train_cli() -> None:
    """`cnnlab-train` (and `torchrun ... -m cnnlab.train`): train, test and report (returns `optimized_metric` to
    a sweeper); after a multirun the exit status is the number of failed jobs."""
    FAILED_JOBS.clear()
    _check_run_name()
    if distributed.launched_by_torchrun():
        _join_torchrun()
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


def _take_text_argument() -> "str | None":
    """Remove `text=<sentence>` from the command line and return the sentence exactly as typed: Hydra's override
    grammar would read its commas, quotes, brackets, `=` or `${...}` as syntax."""
    def is_text(arg: str) -> bool:
        return arg.lstrip("+").startswith("text=")  # also +text= / ++text=, Hydra's forms for adding a key

    texts = [a.split("=", 1)[1] for a in sys.argv[1:] if is_text(a)]
    if len(texts) > 1:
        print("error: text= is given more than once: predict one sentence with text=\"...\", or several with "
              "input=<text file, one sentence a line>", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = [a for a in sys.argv[1:] if not is_text(a)]
    return texts[0] if texts else None


def predict_cli() -> None:
    """`cnnlab-predict ckpt_path=... input=... output=...`: apply a trained model to new files (a sentence model
    also to one sentence, `text="..."`, taken as typed)."""
    global _predict_text
    _predict_text = _take_text_argument()
    _run(_predict_main, "predict")
