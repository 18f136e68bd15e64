"""Console entry points: `cnnlab-train`, `cnnlab-eval`, `cnnlab-viz`, `cnnlab-predict` (Hydra apps over configs/).

A mistake the user made ends in one `error:` line and exit status 2; a bug shows its traceback. In a multirun a
failed job is recorded in its folder (`failed.json`) and the sweep goes on; the sweep's exit status is the number
of failed jobs. A stop signal (SIGTERM, SIGUSR1, Ctrl-C) checkpoints at the next step and says how to resume.
"""
from __future__ import annotations

import json
import logging
import re
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


def _extra_config_dirs() -> "list[Path]":
    """The folders of the command line's --config-dir / -cd (searched before cnnlab's configs/)."""
    args = sys.argv[1:]
    return [Path(a.split("=", 1)[1] if "=" in a else args[i + 1]).absolute() for i, a in enumerate(args)
            if a.split("=", 1)[0] in ("--config-dir", "-cd") and ("=" in a or i + 1 < len(args))]


def _has_option(group: str, option: str) -> bool:
    """Whether `group/option.yaml` is in cnnlab's configs/ or a --config-dir of the command line."""
    return any((d / group / f"{option}.yaml").is_file() for d in [Path(CONFIG_DIR)] + _extra_config_dirs())


def _own_search_path() -> bool:
    """Whether the command line searches configs beyond cnnlab's configs/ and --config-dir (hydra.searchpath=, or
    another primary config folder, --config-path / -cp): the options of a group are then not all known here."""
    return any(a.lstrip("+").startswith("hydra.searchpath") or a.split("=", 1)[0] in ("--config-path", "-cp")
               for a in sys.argv[1:])


def _unknown_choice_line(items: "list[str]") -> "str | None":
    """For `group=option` (`model=lenet`) whose option is in no config folder of the command (cnnlab's configs/,
    --config-dir): one line naming the group's options. Sweep values (`model=lenet5,mlp`) are checked one by one."""
    if _own_search_path():
        return None  # Hydra finds the options there, and names what it cannot find
    for item in items:
        group, value = item.split("=", 1)
        if "." in group or "/" in group or not (Path(CONFIG_DIR) / group).is_dir() or value == "null" \
                or any(c in value for c in "()[]{}$*'\""):
            continue  # not a plain choice: Hydra's grammar (null, sweeps, interpolations) reads it
        for option in value.split(","):
            option = option.strip()
            if option and not _has_option(group, option):
                dirs = [Path(CONFIG_DIR)] + _extra_config_dirs()
                names = sorted({p.stem for d in dirs if (d / group).is_dir() for p in (d / group).glob("*.yaml")})
                return (f"error: {group}={option} is not one of the {group} configs: choose one of "
                        f"{', '.join(names)} (or write {group}/{option}.yaml in a --config-dir)")
    return None


def _refused_key_line(config_name: str) -> "str | None":
    """After Hydra refused the command line: for a `key=value` whose key does not exist (`optim.lrr=0.1`,
    `trainr.epochs=3`, `resum=true`), one line naming the valid keys where the key went wrong; None when no key of
    the command line is missing (Hydra's own message, which says only that a key is not in the config, stands)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    items = [a for a in sys.argv[1:] if "=" in a and not a.startswith(("-", "+", "~", "hydra"))]
    line = _unknown_choice_line(items)
    if line is not None or any(a.split("=", 1)[0] in ("--config-path", "-cp", "--config-name", "-cn")
                               for a in sys.argv[1:]):
        return line  # (another primary config: its keys are not cnnlab's train/eval/predict config's)
    groups = [a for a in items if "." not in a.split("=", 1)[0]
              and not (Path(CONFIG_DIR) / a.split("=", 1)[0]).is_dir()]  # keys; experiment= etc. are groups
    extra = _extra_config_dirs()
    search = [f"hydra.searchpath=[{','.join('file://' + str(d) for d in extra)}]"] if extra else []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            base = compose(config_name=config_name, overrides=search)
            unknown = [a for a in groups if a.split("=", 1)[0] not in base]
            cfg = base if unknown else compose(config_name=config_name, overrides=search + [
                a for a in items if "." not in a.split("=", 1)[0]])
    except Exception:  # noqa: BLE001 - the groups themselves are wrong: Hydra's message already says so
        return None
    finally:
        GlobalHydra.instance().clear()
    missing = object()
    for item in items:
        parts = item.split("=", 1)[0].split(".")
        if (Path(CONFIG_DIR) / parts[0]).is_dir() and len(parts) == 1:
            continue  # a group choice (model=..., experiment=...): Hydra lists the options itself
        for i in range(1, len(parts) + 1):
            key, parent = ".".join(parts[:i]), ".".join(parts[:i - 1])
            if OmegaConf.select(cfg, key, default=missing) is not missing:
                continue
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if not OmegaConf.is_dict(node):
                break
            valid = ", ".join(str(k) for k in node if not str(k).startswith("_"))
            where = f"of {parent}" if parent else f"of cnnlab's {config_name} config"
            return f"error: {key} is not a key {where}: valid keys are {valid} (+{item} adds a new key)"
    return None


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
    line = _unknown_choice_line(items)
    if line is not None:  # before Hydra: a multirun would make its sweep folder first
        print(line, file=sys.stderr)
        sys.exit(2)
    _add_checkpoint_choices(config_name)
    _stderr_hold = hold = _HeldStderr(sys.stderr)
    sys.stderr = hold
    SWEEP_DIRS.clear()
    try:
        main()
    except SystemExit as e:
        if e.code not in (0, None) and not hold.passing:
            _remove_unused_sweep_folder()
            line = _refused_key_line(config_name)
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
        _add_overrides([f"hydra.run.dir=${{paths.output_dir}}/{_continued_name() or '${name}'}/{stamp}"])


def _sweeps(args: "list[str]") -> bool:
    """Whether the command line is a multirun: -m, or an Optuna search (hparams_search=<name> sets hydra.mode
    MULTIRUN itself), or hydra.mode=MULTIRUN."""
    return any(a in ("-m", "--multirun") or (a.lstrip("+").startswith("hparams_search=")
                                             and a.split("=", 1)[1] not in ("", "null"))
               or a.lstrip("+").upper() == "HYDRA.MODE=MULTIRUN" for a in args)


_VALUE_OPTIONS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                  "-cd", "--experimental-rerun", "--info", "-i")  # Hydra's options followed by a value


def _add_overrides(items: "list[str]") -> None:
    """Put the overrides `items` on the command line next to its own: Hydra's argparse takes the overrides as one
    run of positional arguments, so after a trailing option (`--cfg job`, `--config-dir d`) they would be refused
    as 'unrecognized arguments'."""
    args = sys.argv
    at = next((i + 1 for i in range(len(args) - 1, 0, -1) if "=" in args[i] and not args[i].startswith("-")
               and args[i - 1].split("=", 1)[0] not in _VALUE_OPTIONS), len(args))
    args[at:at] = list(items)


_saved_run_info: "dict[str, dict]" = {}


def _unquoted(value: str) -> str:
    """A command-line value as Hydra reads it when it is quoted (`"<sweep dir>/0_seed=0"`, see typed_override)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0]).replace("\\\\", "\\")
    return value


def _checkpoint_run_info(config_name: str) -> dict:
    """The run_info (name, overrides, choices) of the checkpoint this command works on: `ckpt_path=`, or for
    cnnlab-train `resume=true|auto hydra.run.dir=<run>` its last.pt; {} when there is none or it cannot be read
    here (the command itself then reports why)."""
    args = sys.argv[1:]
    values = {a.split("=", 1)[0]: _unquoted(a.split("=", 1)[1]) for a in args if "=" in a and not a.startswith("-")}
    path = values.get("ckpt_path")
    if not path and config_name == "train" and values.get("resume", "").lower() in ("true", "auto") \
            and values.get("hydra.run.dir"):
        path = str(Path(values["hydra.run.dir"]) / "checkpoints" / "last.pt")
    if not path or path in ("null", "None") or not Path(path).expanduser().is_file():
        return {}
    if path not in _saved_run_info:
        from .checkpoint import load_checkpoint

        try:
            _saved_run_info[path] = dict(load_checkpoint(path, map_location="cpu").get("run_info") or {})
        except Exception:  # noqa: BLE001 - any unreadable checkpoint: the command names the problem
            _saved_run_info[path] = {}
    return _saved_run_info[path]


def _add_checkpoint_choices(config_name: str) -> None:
    """For a command on a checkpoint (resume, ckpt_path=, cnnlab-eval/viz/predict): the config groups of the
    checkpoint's run (experiment, model, data, ...) that the command line does not choose, chosen as that run chose
    them, so that a key of that run's model or data (`model.base=16` for a U-Net, `data.slice_step=20`) is
    accepted; the run's saved config still decides the values. Recorded in report.CHECKPOINT_CHOICES, which the
    run's record of its overrides leaves out."""
    from .report import CHECKPOINT_CHOICES

    CHECKPOINT_CHOICES.clear()
    args = sys.argv[1:]
    if _sweeps(args):  # a sweep's job folders and table are named by its overrides
        return
    chosen = {a.lstrip("+~").split("=", 1)[0] for a in args}
    # a group the command line chooses (optim=sgd) takes that option's values (build.saved_config): the run's
    # experiment, a _global_ bundle of values for its groups, would put its own (its optim.lr) into it
    chooses_group = any((Path(CONFIG_DIR) / a.split("=", 1)[0]).is_dir() for a in args
                        if "=" in a and not a.startswith(("-", "hydra")) and not a.split("=", 1)[0].startswith("/"))
    for group, option in (_checkpoint_run_info(config_name).get("choices") or {}).items():
        option = str(option)
        if group in chosen or group.startswith("hydra") or "/" in group or option in ("None", "null", "?") \
                or group == "hparams_search" or (group == "experiment" and chooses_group) \
                or not _has_option(group, option):
            continue  # hparams_search: a search's trial; choosing it again would start the search (a multirun)
        CHECKPOINT_CHOICES.append(f"{group}={option}")
    _add_overrides(CHECKPOINT_CHOICES)


def _continued_name() -> "str | None":
    """For `cnnlab-train ckpt_path=...` without name= or hydra.run.dir=: the name of the checkpoint's run, so that
    the continued run's folder is outputs/<that name>/<time> (the name of the command line's own choices, the
    default lenet5_digits for a bare command, would misfile it). None otherwise, or when the checkpoint cannot be
    read here (the training command reports that)."""
    args = sys.argv[1:]
    if not any(a.startswith("ckpt_path=") for a in args) \
            or any(a.lstrip("+").startswith(("name=", "hydra.run.dir=")) for a in args) \
            or _sweeps(args):
        return None
    from .runguard import name_refusal

    name = str(_checkpoint_run_info("train").get("name") or "")
    # the name goes into a hydra.run.dir= override unquoted: one with Hydra syntax in it ('=', ',', spaces, quotes,
    # `${`) would make the command line unreadable to Hydra
    return name if re.fullmatch(r"[A-Za-z0-9_.+:@%-]+", name) and name_refusal(name) is None else None


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
    else:
        name = _continued_name()
        if name is not None:
            _add_overrides([f"hydra.run.dir=${{paths.output_dir}}/{name}/${{now:%Y-%m-%d_%H-%M-%S_%f}}"])
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
