"""The command line before Hydra reads it: a misspelt group option or key as one line naming what exists, the
config-group choices of the checkpoint a command works on, the run folder of a continued run, and the arguments
Hydra's grammar must not see (`text=`, a run `name=` that is not a folder name)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .build import CONFIG_DIR

VALUE_OPTIONS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                 "-cd", "--experimental-rerun", "--info", "-i")  # Hydra's options followed by a value


def extra_config_dirs() -> "list[Path]":
    """The folders of the command line's --config-dir / -cd (searched before cnnlab's configs/)."""
    args = sys.argv[1:]
    return [Path(a.split("=", 1)[1] if "=" in a else args[i + 1]).absolute() for i, a in enumerate(args)
            if a.split("=", 1)[0] in ("--config-dir", "-cd") and ("=" in a or i + 1 < len(args))]


def has_option(group: str, option: str) -> bool:
    """Whether `group/option.yaml` is in cnnlab's configs/ or a --config-dir of the command line."""
    return any((d / group / f"{option}.yaml").is_file() for d in [Path(CONFIG_DIR)] + extra_config_dirs())


def own_search_path() -> bool:
    """Whether the command line searches configs beyond cnnlab's configs/ and --config-dir (hydra.searchpath=, or
    another primary config folder, --config-path / -cp): the options of a group are then not all known here."""
    return any(a.lstrip("+").startswith("hydra.searchpath") or a.split("=", 1)[0] in ("--config-path", "-cp")
               for a in sys.argv[1:])


def unknown_choice_line(items: "list[str]") -> "str | None":
    """For `group=option` (`model=lenet`) whose option is in no config folder of the command (cnnlab's configs/,
    --config-dir): one line naming the group's options. Sweep values (`model=lenet5,mlp`) are checked one by one."""
    if own_search_path():
        return None  # Hydra finds the options there, and names what it cannot find
    for item in items:
        group, value = item.split("=", 1)
        if "." in group or "/" in group or not (Path(CONFIG_DIR) / group).is_dir() or value == "null" \
                or any(c in value for c in "()[]{}$*'\""):
            continue  # not a plain choice: Hydra's grammar (null, sweeps, interpolations) reads it
        for option in value.split(","):
            option = option.strip()
            if option and not has_option(group, option):
                dirs = [Path(CONFIG_DIR)] + extra_config_dirs()
                names = sorted({p.stem for d in dirs if (d / group).is_dir() for p in (d / group).glob("*.yaml")})
                return (f"error: {group}={option} is not one of the {group} configs: choose one of "
                        f"{', '.join(names)} (or write {group}/{option}.yaml in a --config-dir)")
    return None


def refused_key_line(config_name: str) -> "str | None":
    """After Hydra refused the command line: for a `key=value` whose key does not exist (`optim.lrr=0.1`,
    `trainr.epochs=3`, `resum=true`), one line naming the valid keys where the key went wrong; None when no key of
    the command line is missing (Hydra's own message, which says only that a key is not in the config, stands)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    items = [a for a in sys.argv[1:] if "=" in a and not a.startswith(("-", "+", "~", "hydra"))]
    line = unknown_choice_line(items)
    if line is not None or any(a.split("=", 1)[0] in ("--config-path", "-cp", "--config-name", "-cn")
                               for a in sys.argv[1:]):
        return line  # (another primary config: its keys are not cnnlab's train/eval/predict config's)
    groups = [a for a in items if "." not in a.split("=", 1)[0]
              and not (Path(CONFIG_DIR) / a.split("=", 1)[0]).is_dir()]  # keys; experiment= etc. are groups
    extra = extra_config_dirs()
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


def sweeps(args: "list[str]") -> bool:
    """Whether the command line is a multirun: -m, or an Optuna search (hparams_search=<name> sets hydra.mode
    MULTIRUN itself), or hydra.mode=MULTIRUN."""
    return any(a in ("-m", "--multirun") or (a.lstrip("+").startswith("hparams_search=")
                                             and a.split("=", 1)[1] not in ("", "null"))
               or a.lstrip("+").upper() == "HYDRA.MODE=MULTIRUN" for a in args)


def add_overrides(items: "list[str]") -> None:
    """Put the overrides `items` on the command line next to its own: Hydra's argparse takes the overrides as one
    run of positional arguments, so after a trailing option (`--cfg job`, `--config-dir d`) they would be refused
    as 'unrecognized arguments'."""
    args = sys.argv
    at = next((i + 1 for i in range(len(args) - 1, 0, -1) if "=" in args[i] and not args[i].startswith("-")
               and args[i - 1].split("=", 1)[0] not in VALUE_OPTIONS), len(args))
    args[at:at] = list(items)


saved_run_info: "dict[str, dict]" = {}


def unquoted(value: str) -> str:
    """A command-line value as Hydra reads it when it is quoted (`"<sweep dir>/0_seed=0"`, see typed_override)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0]).replace("\\\\", "\\")
    return value


def checkpoint_run_info(config_name: str) -> dict:
    """The run_info (name, overrides, choices) of the checkpoint this command works on: `ckpt_path=`, or for
    cnnlab-train `resume=true|auto hydra.run.dir=<run>` its last.pt; {} when there is none or it cannot be read
    here (the command itself then reports why)."""
    args = sys.argv[1:]
    values = {a.split("=", 1)[0]: unquoted(a.split("=", 1)[1]) for a in args if "=" in a and not a.startswith("-")}
    path = values.get("ckpt_path")
    if not path and config_name == "train" and values.get("resume", "").lower() in ("true", "auto") \
            and values.get("hydra.run.dir"):
        path = str(Path(values["hydra.run.dir"]) / "checkpoints" / "last.pt")
    if not path or path in ("null", "None") or not Path(path).expanduser().is_file():
        return {}
    if path not in saved_run_info:
        from .checkpoint import load_checkpoint

        try:
            saved_run_info[path] = dict(load_checkpoint(path, map_location="cpu").get("run_info") or {})
        except Exception:  # noqa: BLE001 - any unreadable checkpoint: the command names the problem
            saved_run_info[path] = {}
    return saved_run_info[path]


def add_checkpoint_choices(config_name: str) -> None:
    """For a command on a checkpoint (resume, ckpt_path=, cnnlab-eval/viz/predict): the config groups of the
    checkpoint's run (experiment, model, data, ...) that the command line does not choose, chosen as that run chose
    them, so that a key of that run's model or data (`model.base=16` for a U-Net, `data.slice_step=20`) is
    accepted; the run's saved config still decides the values. Recorded in report.CHECKPOINT_CHOICES, which the
    run's record of its overrides leaves out."""
    from .report import CHECKPOINT_CHOICES

    CHECKPOINT_CHOICES.clear()
    args = sys.argv[1:]
    if sweeps(args):  # a sweep's job folders and table are named by its overrides
        return
    chosen = {a.lstrip("+~").split("=", 1)[0] for a in args}
    # a group the command line chooses (optim=sgd) takes that option's values (build.saved_config): the run's
    # experiment, a _global_ bundle of values for its groups, would put its own (its optim.lr) into it
    chooses_group = any((Path(CONFIG_DIR) / a.split("=", 1)[0]).is_dir() for a in args
                        if "=" in a and not a.startswith(("-", "hydra")) and not a.split("=", 1)[0].startswith("/"))
    for group, option in (checkpoint_run_info(config_name).get("choices") or {}).items():
        option = str(option)
        if group in chosen or group.startswith("hydra") or "/" in group or option in ("None", "null", "?") \
                or group == "hparams_search" or (group == "experiment" and chooses_group) \
                or not has_option(group, option):
            continue  # hparams_search: a search's trial; choosing it again would start the search (a multirun)
        CHECKPOINT_CHOICES.append(f"{group}={option}")
    add_overrides(CHECKPOINT_CHOICES)


def continued_name() -> "str | None":
    """For `cnnlab-train ckpt_path=...` without name= or hydra.run.dir=: the name of the checkpoint's run, so that
    the continued run's folder is outputs/<that name>/<time> (the name of the command line's own choices, the
    default lenet5_digits for a bare command, would misfile it). None otherwise, or when the checkpoint cannot be
    read here (the training command reports that)."""
    args = sys.argv[1:]
    if not any(a.startswith("ckpt_path=") for a in args) \
            or any(a.lstrip("+").startswith(("name=", "hydra.run.dir=")) for a in args) \
            or sweeps(args):
        return None
    from .runguard import name_refusal

    name = str(checkpoint_run_info("train").get("name") or "")
    # the name goes into a hydra.run.dir= override unquoted: one with Hydra syntax in it ('=', ',', spaces, quotes,
    # `${`) would make the command line unreadable to Hydra
    return name if re.fullmatch(r"[A-Za-z0-9_.+:@%-]+", name) and name_refusal(name) is None else None


def check_run_name() -> None:
    """`name=` names the run folder, paths.output_dir/<name>/<time>: a path separator or `..` in it would put the
    run elsewhere, so it is refused before Hydra creates the folder (a name set in a config file: RunFolderGuard)."""
    from .runguard import name_refusal

    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        reason = name_refusal(value) if key.lstrip("+") == "name" else None
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            sys.exit(2)


def take_text_argument() -> "str | None":
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
