"""What a run writes beside its checkpoints: resolved config, environment, results.json, the HParams row."""
from __future__ import annotations

import json
import logging
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .metrics import per_class_accuracy
from .tblog import RunLogger

log = logging.getLogger("cnnlab")


RUN_CONTROL_KEYS = ("resume", "ckpt_path")  # how a run was started, not what it is


def parse_override(item: str) -> "tuple[str, str]":
    """'+trainer.epochs=5' -> ('trainer.epochs', '5')."""
    key, _, value = item.lstrip("+~").partition("=")
    return key, value


def is_setting(item: str) -> bool:
    """True for an override that changes the run's config (not resume/ckpt_path, not hydra.*)."""
    key = parse_override(item)[0]
    return key not in RUN_CONTROL_KEYS and not key.startswith("hydra")


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
            if key in choices:
                choices[key] = value
        self.name, self.overrides, self.choices = saved["name"], [*saved["overrides"], *new], choices

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


def _hparams(info: RunInfo, cfg_overrides: list[str]) -> dict[str, Any]:
    hp: dict[str, Any] = {g: info.choice(g) for g in ("model", "data", "optim", "sched", "loss")}
    for item in cfg_overrides:
        key, value = parse_override(item)
        hp[key] = _number(value)
    return hp


def _number(text: str) -> "int | float | str":
    """'3e-4' -> 0.0003 and '64' -> 64, so TensorBoard's HParams tab can sort and plot them."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _log_per_class(acc: dict[str, float], width: int = 4) -> None:
    """The per-class test accuracy table in the log, `width` classes per line (first 40 classes)."""
    items = [f"{name[:14]:>14} {value:6.3f}" for name, value in list(acc.items())[:40]]
    log.info("per-class test accuracy:")
    for i in range(0, len(items), width):
        log.info("  " + "   ".join(items[i:i + width]))


def write_results(run_dir: Path, state: Any, test: dict[str, Any], bundle: Any, info: RunInfo,
                  logger: RunLogger) -> dict[str, Any]:
    """results.json: test metrics of the best checkpoint, best val metrics, timing; plus the HParams row."""
    fallback = state.history[-1] if state.history else {}
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), fallback)
    epoch_times = [h["train/epoch_time_s"] for h in state.history]
    results: dict[str, Any] = {
        "experiment": info.name or f"{info.choice('model')}_{info.choice('data')}",
        "model": info.choice("model"), "data": info.choice("data"), "loss": info.choice("loss"),
        **{f"test/{k}": v for k, v in test.items() if k != "confusion"},
        **{k: v for k, v in best.items() if k.startswith("val/")},
        "best_epoch": state.best_epoch, "epochs": state.epoch, "steps": state.step,
        "train_time_s": sum(epoch_times),
        "train_samples_per_s": (sum(h["train/samples_per_s"] for h in state.history) / len(state.history)
                                if state.history else 0.0),
        "per_class_test_acc": per_class_accuracy(test["confusion"], bundle.class_names),
        "test_confusion": test["confusion"].tolist(),
        "overrides": info.overrides,
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    _log_per_class(results["per_class_test_acc"])
    metric_keys = [k for k in ("test/acc", "test/top5", "test/f1", "test/iou", "test/loss", "val/acc")
                   if isinstance(results.get(k), float)]
    logger.hparams(_hparams(info, info.overrides), {k.replace("/", "_"): results[k] for k in metric_keys})
    return results
