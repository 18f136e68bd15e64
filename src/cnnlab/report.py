"""The run's report: how it was asked for (RunInfo), what it ran on (env.json, config.yaml), what it measured
(results.json, the per-class table, the HParams row)."""
from __future__ import annotations

import json
import logging
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .build import is_setting, parse_override
from .errors import ConfigError
from .metrics import per_class_accuracy
from .tasks import CLASS_TASKS, metric_names
from .tblog import RunLogger

log = logging.getLogger("cnnlab")


@dataclass
class RunInfo:
    """Where the run writes, and how it was asked for (CLI overrides, chosen config-group options)."""

    run_dir: Path
    name: str = ""
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Name, overrides and choices as plain data (stored in checkpoints)."""
        return {"name": self.name, "overrides": list(self.overrides), "choices": dict(self.choices)}

    def continue_from(self, saved: "dict[str, Any] | None") -> None:
        """Resuming: keep the original run's name, overrides and choices, plus what this command line adds."""
        if not saved:
            return
        new = [o for o in self.overrides if is_setting(o)]
        choices = dict(saved["choices"])
        for item in new:
            key, value = parse_override(item)
            if key == "experiment" and str(value) != str(choices.get("experiment")):
                raise ConfigError(f"experiment={value} cannot change a continued run (it is experiment="
                                  f"{choices.get('experiment')}, and its saved config is used): pass only the keys "
                                  f"to change, or start a new run without resume/ckpt_path")
            if key in choices:
                choices[key] = value
        added = [o for o in new if o not in saved["overrides"]]  # a repeated paths.output_dir=... once
        self.name, self.overrides, self.choices = saved["name"], [*saved["overrides"], *added], choices

    def choice(self, group: str) -> str:
        """The option chosen for a config group (`model` -> `lenet5`), or '?'."""
        return str(self.choices.get(group) or "?")

    @classmethod
    def from_hydra(cls) -> "RunInfo":
        """The running Hydra job's output folder, command-line overrides and group choices."""
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        choices = {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
        return cls(Path(hc.runtime.output_dir), "", list(hc.overrides.task), choices)


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_run_metadata(cfg: DictConfig, info: RunInfo, model: nn.Module, device: torch.device) -> None:
    """config.yaml (resolved) and env.json (git commit, versions, device, parameter count) in the run folder."""
    info.run_dir.mkdir(parents=True, exist_ok=True)
    (info.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    env = {
        "git_commit": _git_commit(), "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters()),
        "overrides": info.overrides, "choices": info.choices,
    }
    (info.run_dir / "env.json").write_text(json.dumps(env, indent=2))


def _number(text: str) -> "int | float | str":
    """'3e-4' -> 0.0003 and '64' -> 64, so TensorBoard's HParams tab can sort and plot them."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def hparams(cfg: DictConfig, info: RunInfo, loss: nn.Module) -> dict[str, Any]:
    """The settings that define a run (no paths): group choices, main values, the loss, the command line's values."""
    hp: dict[str, Any] = {g: info.choice(g) for g in ("model", "data", "optim", "sched")}
    hp.update({"loss": " ".join(repr(loss).split()), "optim.lr": float(cfg.optim.lr),
               "optim.weight_decay": float(cfg.optim.get("weight_decay", 0.0)),
               "trainer.batch_size": int(cfg.trainer.batch_size), "trainer.epochs": int(cfg.trainer.epochs),
               "seed": int(cfg.seed), "init": str(cfg.init)})
    for item in info.overrides:
        key, value = parse_override(item)
        if is_setting(item) and not key.endswith(("root", "_dir", "dir")) and key not in hp and "." in key:
            hp[key] = _number(value)
    return hp


def write_results(run_dir: Path, state: Any, test: dict[str, Any], val: dict[str, Any], bundle: Any,
                  info: RunInfo, logger: RunLogger, hp: dict[str, Any],
                  monitor: "tuple[str, str]" = ("val/acc", "max"), write: bool = True,
                  plan: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """results.json (the best checkpoint's test and validation metrics, timing, the budget's plan) and HParams row."""
    # only `write`s them when asked: the other ranks of a data-parallel run return the same numbers
    scalars = metric_names(bundle.task, bundle.num_classes, bundle.state)
    seconds = sum(h["train/epoch_time_s"] for h in state.history)
    samples = sum(h.get("train/samples", 0) for h in state.history)
    results: dict[str, Any] = {
        "experiment": info.name or f"{info.choice('model')}_{info.choice('data')}",
        "model": info.choice("model"), "data": info.choice("data"), "task": bundle.task, "loss": info.choice("loss"),
        "loss_resolved": hp["loss"],
        **{f"test/{k}": test[k] for k in scalars if k in test},
        **{f"val/{k}": val[k] for k in scalars if k in val},
        "monitor": str(monitor[0]), "mode": str(monitor[1]),
        "best_epoch": state.best_epoch, "epochs": state.epoch, "steps": state.step,
        "train_time_s": seconds, "train_samples_per_s": samples / seconds if seconds > 0 else 0.0,
    }
    if plan and "budget_min" in plan:
        results.update(budget_min=plan["budget_min"], budget_epochs=plan["epochs"])
    if "threshold" in bundle.state:
        results["threshold"] = bundle.state["threshold"]
    if bundle.task in CLASS_TASKS:
        results["per_class_test_acc"] = per_class_accuracy(test["confusion"], bundle.class_names)
    results.update(test_confusion=test["confusion"].tolist(), overrides=info.overrides)
    if not write:
        return results
    if "per_class_test_acc" in results:  # in the log, four classes a line (the first 40)
        items = [f"{name[:14]:>14} {v:6.3f}" for name, v in list(results["per_class_test_acc"].items())[:40]]
        log.info("per-class test accuracy:")
        for i in range(0, len(items), 4):
            log.info("  " + "   ".join(items[i:i + 4]))
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    (run_dir / "failed.json").unlink(missing_ok=True)  # an earlier attempt's failure, resumed and now finished
    # test/* as scalars too (at the last step, beside the val/* curves), not only in the HParams tab
    logger.scalars({k: v for k, v in results.items() if k.startswith("test/")}, state.step)
    logger.hparams(hp, {f"{s}/{k}": results.get(f"{s}/{k}", float("nan")) for s in ("val", "test") for k in scalars})
    return results
