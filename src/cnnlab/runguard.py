"""Refuse a run folder before Hydra writes into it.

Hydra creates the run folder and rewrites its `.hydra/` files (config, overrides) and opens the job's log file
before cnnlab's code runs, so the lock taken in `commands.training` comes too late to keep a refused command's
config out of another run's record. This callback checks the same two conditions first, in `on_run_start`: the
folder is locked by a live cnnlab command, or it already holds a run and this command does not continue it. A run
that is continued keeps its `.hydra/` record of how it was launched (`keep_launch_record`).
"""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .checkpoint import LOCK, holds_run, holds_run_message, in_use_message
from .commands.training import continues_in_place, resume_path
from .errors import ConfigError
from .distributed import launched_by_torchrun


def holder_of_lock(run_dir: Path) -> "str | None":
    """The pid (as written in the lock file) of the live command holding `run_dir`'s lock, else None."""
    path = run_dir / LOCK
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    finally:
        os.close(fd)  # also drops the shared lock taken to probe
    return None


def name_refusal(value: str) -> "str | None":
    """Why `name=<value>` cannot name a run folder (paths.output_dir/<name>/<time>): a path separator or `..` would
    put the run elsewhere; None when it can. `value` may list a multirun's names, `a,b`."""
    if "/" in value or "\\" in value or ".." in value.split(","):
        return (f"name={value} is not a plain folder name: the run goes to paths.output_dir/<name>/<time>, so give "
                f"a name without '/' or '..', e.g. name=my_run")
    return None


def refusal(cfg: DictConfig, run_dir: Path) -> "str | None":
    """Why this command may not use `run_dir` (the message of the error), or None when it may."""
    pid = holder_of_lock(run_dir)
    if pid is not None:
        return in_use_message(run_dir, pid)
    try:
        resume = resume_path(cfg, run_dir)
    except ConfigError as e:  # resume=yes, or resume=true in a folder without last.pt (e.g. <run>/checkpoints)
        return str(e)
    if not holds_run(run_dir):
        return None
    return None if continues_in_place(resume, run_dir) else holds_run_message(run_dir)


FRESH: set = set()  # run folders that did not exist when this command started (so it may remove them on failure)
LAUNCH_RECORDS: dict[Path, dict[str, bytes]] = {}  # a continued run's .hydra/ files as they were before Hydra's


def keep_launch_record(run_dir: Path) -> None:
    """Put back the `.hydra/` files (config, overrides, hydra.yaml) of the run `run_dir` holds, which Hydra has
    just rewritten for this command: a continued run keeps the record of how it was launched (the continuation's
    own settings are in config.yaml and env.json, its command in train.log), and a refused one leaves no trace."""
    record = LAUNCH_RECORDS.pop(run_dir.resolve(), None)
    if record is None:
        return
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    for name in os.listdir(folder):
        if name not in record and (folder / name).is_file():
            (folder / name).unlink()
    for name, data in record.items():
        (folder / name).write_bytes(data)


class RunFolderGuard(Callback):
    """Stops a single run (not a multirun's jobs, whose folders are new) before Hydra touches a folder it may not
    use; the training command repeats the check under the lock, which also settles a race between two commands."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: ARG002 (Hydra's signature)
        if launched_by_torchrun() and os.environ.get("RANK", "0") != "0":
            return  # rank 0 owns the folder; the other ranks join it
        HydraConfig.instance().set_config(config)  # the run folder's name may use ${hydra:...} values
        name = name_refusal(str(OmegaConf.select(config, "name", default="")))  # e.g. set by an experiment
        if name is not None:
            print(f"error: {name}", file=sys.stderr)
            sys.exit(2)
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        if not run_dir.is_dir():
            FRESH.add(run_dir.resolve())
            return
        reason = refusal(config, run_dir)
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            sys.exit(2)
        launched = run_dir / ".hydra"
        if holds_run(run_dir) and launched.is_dir():  # continued in place: Hydra is about to rewrite its record
            LAUNCH_RECORDS[run_dir.resolve()] = {p.name: p.read_bytes() for p in launched.iterdir() if p.is_file()}
