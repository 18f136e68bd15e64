"""After a multirun (a Hydra callback of configs/train.yaml): the jobs' table from their folders (those of other
launchers' processes too) on the console and in summary.md, the failed jobs' count as exit status; and the resolvers
that name the sweep's folders and seed the Optuna sampler (configs/hparams_search/)."""
from __future__ import annotations

import json
import logging
import re
import statistics
from pathlib import Path
from typing import Any, Iterable

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .rundir import folder_name

log = logging.getLogger("cnnlab")


def test_counterpart(metric: str) -> str:
    """The test split's counterpart of a validation metric (val/acc -> test/acc)."""
    return "test/" + metric.split("/", 1)[1] if metric.startswith("val/") else metric


def sweep_name(choices: Any, overrides: Any, params: Any = None) -> str:
    """`<model>_<data>` of a multirun's folder; a swept group is named by its values (`model=a,b` -> `a+b_<data>`)."""
    swept = {}
    searched = [f"{k}={v}" for k, v in (params or {}).items()]
    for override in OverridesParser.create().parse_overrides([str(o) for o in overrides] + searched):
        if override.is_sweep_override() and override.key_or_group in ("experiment", "model", "data"):
            try:
                swept[override.key_or_group] = "+".join(override.sweep_string_iterator())
            except HydraException:  # glob(...): named as typed
                swept[override.key_or_group] = override.input_line.split("=", 1)[1]
    name = swept.get("experiment") or f"{swept.get('model', choices['model'])}_{swept.get('data', choices['data'])}"
    return folder_name(re.sub(r"[^\w.+=-]", "_", name))  # glob(lenet5*) -> glob_lenet5__


def study_seed(seed: Any, storage: Any, study_name: Any) -> int:
    """The Optuna sampler's seed: `seed` plus the trials the stored study holds (a continued study draws new trials)."""
    if storage is None or study_name is None:
        return int(seed)
    import optuna

    studies = optuna.get_all_study_summaries(storage=str(storage))
    done = sum(s.n_trials for s in studies if s.study_name == study_name)
    if done:
        log.info(f"Optuna study {study_name} holds {done} trials: the sampler's seed is {int(seed) + done} "
                 f"(seed={seed} + {done})")
    return int(seed) + done


def made_folder(path: str) -> str:
    """`${cnnlab.folder:<path>}` in a config: the path, created if missing (e.g. for an Optuna SQLite file)."""
    Path(path).expanduser().mkdir(parents=True, exist_ok=True)
    return str(path)


OmegaConf.register_new_resolver("cnnlab.folder", made_folder, replace=True)
# use_cache: resolved once as the sweep starts (Hydra copies the values into every job's config: one folder name)
OmegaConf.register_new_resolver("cnnlab.sweep_name", sweep_name, replace=True, use_cache=True)
OmegaConf.register_new_resolver("cnnlab.study_seed", study_seed, replace=True, use_cache=True)


def job_folders(sweep_dir: Path) -> list[Path]:
    """The job folders below `sweep_dir` at any depth: those holding Hydra's `.hydra` record."""
    return sorted(p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir() and p.parent != sweep_dir)


def job_rows(jobs: Iterable[Path], metric: str) -> list[dict[str, Any]]:
    """One row per job folder: number, overrides, status, the metric and its test counterpart."""
    rows = []
    for job in jobs:
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        try:  # the job's number: Hydra's record (`hydra.job.num`), else the folder name's prefix
            number = str(int(yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"]))
        except (OSError, TypeError, KeyError, ValueError, yaml.YAMLError):
            number = job.name.split("_", 1)[0]
        row: dict[str, Any] = {"job": number, "folder": str(job), "overrides": " ".join(overrides or []),
                               "status": "no result", "value": None, "test": None}
        if (job / "results.json").is_file():  # before failed.json: a failed job resumed to its end is finished
            results = json.loads((job / "results.json").read_text())
            row.update(status="ok", value=results.get(metric), test=results.get(test_counterpart(metric)))
        elif (job / "failed.json").is_file():
            row.update(status="failed", error=json.loads((job / "failed.json").read_text()).get("error", ""))
        rows.append(row)
    return sorted(rows, key=lambda r: (int(r["job"]) if r["job"].isdigit() else 0, r["folder"]))


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


def _mean_std(values: list[Any]) -> str:
    """'mean ± std' of the numbers among `values` (the spread of seeds or folds), or '' with fewer than two."""
    numbers = [v for v in values if isinstance(v, (int, float))]
    return f"{statistics.mean(numbers):.4f} ± {statistics.stdev(numbers):.4f}" if len(numbers) >= 2 else ""


def summary_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The rows as a markdown table; with two or more finished jobs a last row gives mean ± std (over folds, seeds)."""
    test = test_counterpart(metric)
    lines = [f"| job | overrides | status | {metric} | {test} |", "|---|---|---|---|---|"]
    for r in rows:
        status = r["status"] if r["status"] != "failed" else f"failed: {r.get('error', '')[:120]}"
        lines.append(f"| {r['job']} | {r['overrides']} | {status} | {_number(r['value'])} | {_number(r['test'])} |")
    ok = [r for r in rows if r["status"] == "ok"]
    if len(ok) >= 2:
        lines.append(f"| mean | {len(ok)} finished jobs | | {_mean_std([r['value'] for r in ok])} | "
                     f"{_mean_std([r['test'] for r in ok])} |")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Prints and writes the summary table as a multirun ends; exits with the number of failed jobs (through Hydra)."""

    def __init__(self) -> None:
        self.ran: list[Path] = []  # folders of the jobs run in this process

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:  # noqa: ARG002
        self.ran.append(Path(config.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: ARG002 (Hydra's signature)
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir() and not self.ran:
            return  # no job ran (e.g. an Optuna study that already has its trials)
        found = job_folders(sweep_dir.resolve()) if sweep_dir.is_dir() else []  # absolute, as Hydra's output_dir
        ran = dict.fromkeys(p.resolve() for p in self.ran)
        jobs = found + [p for p in ran if p not in found and (p / ".hydra").is_dir()]
        metric = str(config.get("optimized_metric", "val/acc"))
        rows = job_rows(jobs, metric)
        failed = [r["folder"] for r in rows if r["status"] != "ok"] if rows else [str(sweep_dir)]
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "summary.json").write_text(json.dumps({"failed": failed, "jobs": rows}, indent=2))
        if not rows:
            log.error(f"error: the sweep's jobs left no folder (one with a .hydra record) below {sweep_dir}: "
                      f"check hydra.sweep.dir and hydra.sweep.subdir")
            raise SystemExit(1)
        table = summary_table(rows, metric)
        (sweep_dir / "summary.md").write_text(table + "\n")
        log.info(f"sweep of {len(rows)} jobs in {sweep_dir}:\n{table}")
        if failed:
            log.error(f"{len(failed)} of {len(rows)} jobs failed or left no result (see failed.json in their folders)")
            raise SystemExit(min(len(failed), 125))
