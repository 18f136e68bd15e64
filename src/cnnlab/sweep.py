"""After a multirun: one summary table of the sweep's jobs (console and `<sweep dir>/summary.md`), and the count
of failed jobs that becomes the exit status of `cnnlab-train -m`.

Registered as a Hydra callback in configs/train.yaml. It reads the job folders, so it also sees jobs that other
launchers (joblib, submitit) ran in other processes.
"""
from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("cnnlab")
FAILED_JOBS: list[str] = []  # folders of the failed jobs of the last multirun in this process


def test_counterpart(metric: str) -> str:
    """The test split's counterpart of a validation metric (val/acc -> test/acc)."""
    return "test/" + metric.split("/", 1)[1] if metric.startswith("val/") else metric


def job_rows(sweep_dir: Path, metric: str) -> list[dict[str, Any]]:
    """One row per job folder (a sub-folder with a `.hydra` record): number, overrides, status, the metric and its
    test counterpart."""
    rows = []
    for job in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        row: dict[str, Any] = {"job": job.name.split("_", 1)[0], "folder": str(job),
                               "overrides": " ".join(overrides or []), "status": "no result", "value": None,
                               "test": None}
        if (job / "results.json").is_file():  # before failed.json: a failed job resumed to its end is finished
            results = json.loads((job / "results.json").read_text())
            row.update(status="ok", value=results.get(metric), test=results.get(test_counterpart(metric)))
        elif (job / "failed.json").is_file():
            row.update(status="failed", error=json.loads((job / "failed.json").read_text()).get("error", ""))
        rows.append(row)
    return sorted(rows, key=lambda r: int(r["job"]) if r["job"].isdigit() else 0)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


def _mean_std(values: list[Any]) -> str:
    """'mean ± std' of the numbers among `values` (the spread of seeds or folds), or '' with fewer than two."""
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(numbers) < 2:
        return ""
    return f"{statistics.mean(numbers):.4f} ± {statistics.stdev(numbers):.4f}"


def summary_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The rows as a markdown table; with two or more finished jobs a last row gives mean ± std (e.g. over the
    folds of a cross-validation, or over seeds)."""
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
    """Prints and writes the summary table at the end of a multirun; remembers the failed jobs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: ARG002 (Hydra's signature)
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        metric = str(config.get("optimized_metric", "val/acc"))
        rows = job_rows(sweep_dir, metric)
        table = summary_table(rows, metric)
        (sweep_dir / "summary.md").write_text(table + "\n")
        failed = [r["folder"] for r in rows if r["status"] != "ok"]
        FAILED_JOBS[:] = failed
        log.info(f"sweep of {len(rows)} jobs in {sweep_dir}:\n{table}")
        if failed:
            log.error(f"{len(failed)} of {len(rows)} jobs failed or left no result (see failed.json in their folders)")
