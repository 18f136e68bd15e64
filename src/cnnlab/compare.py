"""`cnnlab-compare <run or sweep folders...>`: one table of runs (their overrides and final metrics, sorted by the
monitored metric), and with `--plot curves.png` (or .svg / .pdf) their validation curves, or any other scalar
(`--metric train/lr`: the learning-rate schedules), read from the TensorBoard event files (docs/commands.md)."""
from __future__ import annotations

import argparse
import bisect
import csv
import fnmatch
import io
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

from .commands.predict_io import check_output_file
from .errors import ConfigError
from .tasks import TASKS, metric_names

PLOT_FORMATS = (".png", ".svg", ".pdf")  # what --plot writes (viz.plots.save_figure)

# Published figures (DESIGN.md) next to the experiments they belong to: (what, value as text).
ANCHORS: dict[str, tuple[str, str]] = {
    "svm_pixels_mnist": ("linear classifier on pixels, MNIST (LeCun 1998): 12 % error", "acc 0.88"),
    "lenet5_mnist": ("LeNet-5, MNIST (LeCun 1998): 0.95 % error", "acc 0.9905"),
    "lenet5_classic_mnist": ("LeNet-5, MNIST (LeCun 1998): 0.95 % error", "acc 0.9905"),
    "logreg_patches_roads": ("logistic regression on patch colour, CIL roads", "F1 ~ 0.51"),
    "svm_patches_roads": ("CNN reference: small 2-conv CNN, CIL roads", "F1 ~ 0.73"),
    "svm_patches_mito": ("CNN reference: 3D U-Net, EPFL mitochondria", "IoU ~ 0.89"),
    "svm_features_cifar10": ("SVM on HOG + colour histogram, CIFAR-10", "acc ~ 0.42"),
    "alexnet_small_cifar10": ("AlexNet-style, CIFAR-10", "acc ~ 0.77"),
    "unet_roads": ("U-Net, CIL roads (hidden test set)", "patch F1 0.88-0.92"),
    "fcn_roads": ("small 2-conv CNN / U-Net, CIL roads", "patch F1 0.73 / 0.88-0.92"),
    "unet_mito": ("3D U-Net, EPFL mitochondria test volume", "IoU ~ 0.89"),
    "sentence_cnn_sst2": ("Kim 2014 CNN-rand, SST-2", "acc 0.827"),
    "sentence_cnn_mr": ("Kim 2014 CNN-rand, MR (10-fold)", "acc 0.761"),
}


def load_runs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every run below the given folders: results.json (finished) or failed.json (failed), with `run_dir`."""
    runs, seen = [], set()
    for root in paths:
        # results.json first: a run that failed, was resumed and finished counts as finished
        for path in [*sorted(root.rglob("results.json")), *sorted(root.rglob("failed.json"))]:
            if path.parent in seen:
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                print(f"skipping {path}: {e}", file=sys.stderr)
                continue
            if not isinstance(data, dict):
                continue
            seen.add(path.parent)
            data.setdefault("experiment", path.parent.parent.name)
            data.update(run_dir=str(path.parent), _mtime=path.stat().st_mtime,
                        status="failed" if path.name == "failed.json" else "ok")
            runs.append(data)
    return runs


def select(runs: Iterable[dict[str, Any]], patterns: Optional[list[str]] = None,
           latest: bool = False) -> list[dict[str, Any]]:
    """Runs whose experiment matches a glob in `patterns`; with `latest`, each experiment's newest (finished first)."""
    chosen = [r for r in runs if not patterns or any(fnmatch.fnmatch(str(r.get("experiment", "")), p)
                                                     for p in patterns)]
    if not latest:
        return chosen
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in chosen:
        groups.setdefault(str(r.get("experiment", "")), []).append(r)
    return [max(group, key=lambda r: (r["status"] == "ok", r["_mtime"])) for group in groups.values()]


def sort_runs(runs: list[dict[str, Any]], key: Optional[str]) -> list[dict[str, Any]]:
    """Best first by `key` (default: each run's monitored metric, in its mode); failed runs and ties last."""
    def score(r: dict[str, Any]) -> tuple:
        k = key or r.get("monitor")
        value = r.get(k) if k else None
        if not isinstance(value, (int, float)):
            return (1, 0.0, str(r.get("experiment")), r["_mtime"])
        lower_is_better = k.endswith(("loss", "mse")) if key else r.get("mode") == "min"
        return (0, value if lower_is_better else -value, str(r.get("experiment")), r["_mtime"])
    return sorted(runs, key=score)


def metric_columns(runs: list[dict[str, Any]]) -> list[str]:
    """test/<m> columns in the tasks' own metric order (loss left out), those any run reports."""
    names: list[str] = []
    for task in TASKS:
        for k in (2, 10):
            names += [n for n in metric_names(task, k, {"patch": 16}) if n not in names and n != "loss"]
    present = {k for r in runs for k in r}
    return [f"test/{n}" for n in names if f"test/{n}" in present]


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def table(runs: list[dict[str, Any]], anchors: bool = False, folders: bool = True) -> list[list[str]]:
    """Header and one row per run: experiment, overrides, monitored metric, test metrics, epochs, time."""
    cols = metric_columns(runs)
    head = ["experiment", "overrides", "monitored", *cols, "epochs", "train time (s)", "status"]
    head += ["published anchor"] if anchors else []
    head += ["run folder"] if folders else []
    rows = [head]
    for r in runs:
        monitor = str(r.get("monitor", ""))
        shown = f"{monitor} {_number(r.get(monitor))}".strip() if monitor in r else ""
        row = [str(r.get("experiment", "")), " ".join(r.get("overrides", [])), shown,
               *[_number(r.get(c)) for c in cols], str(r.get("epochs", "")), _number(r.get("train_time_s"), 1),
               r["status"] if r["status"] == "ok" else f"failed: {str(r.get('error', ''))[:60]}"]
        if anchors:
            what, value = ANCHORS.get(str(r.get("experiment", "")), ("", ""))
            row.append(f"{value} ({what})" if what else "")
        if folders:
            row.append(str(r["run_dir"]))
        rows.append(row)
    return rows


def render(rows: list[list[str]], fmt: str) -> str:
    """The table as aligned text, markdown or CSV."""
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue().rstrip("\n")
    if fmt == "md":
        return "\n".join("| " + " | ".join(r) + " |" for r in [rows[0], ["---"] * len(rows[0]), *rows[1:]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def curves(run_dir: Path, metric: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of a scalar in the run's TensorBoard events, a per-step one at fractions of its epoch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not (run_dir / "tb").is_dir():
        return [], []
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}).Reload()
    tags = acc.Tags()["scalars"]
    if metric not in tags or "epoch" not in tags:
        return [], []
    ends = sorted((e.step, e.value) for e in acc.Scalars("epoch"))  # `epoch` is logged at each epoch's last step
    points = []
    for e in acc.Scalars(metric):
        k = bisect.bisect_left(ends, (e.step,))  # the epoch it was logged in
        if k == len(ends):  # after the last finished epoch (a stopped run's partial epoch)
            continue
        start, epoch = (ends[k - 1][0] if k else 0), ends[k][1]
        points.append((epoch - 1 + (e.step - start) / max(ends[k][0] - start, 1), e.value))
    return [p[0] for p in points], [p[1] for p in points]


def curve_labels(runs: list[dict[str, Any]]) -> list[str]:
    """A legend label per run that tells it from the others: its experiment and overrides not shared by all runs."""
    # runs that this leaves equal (same command, other folder) also get the last parts of their folders that differ
    experiments = [str(r.get("experiment", "")) for r in runs]
    overrides = [[str(o) for o in r.get("overrides", [])] for r in runs]
    shared = set.intersection(*map(set, overrides)) if overrides else set()
    labels = [" ".join(([e] if len(set(experiments)) > 1 else []) + [o for o in ovr if o not in shared])
              for e, ovr in zip(experiments, overrides)]
    for label in set(labels):
        same = [i for i, other in enumerate(labels) if other == label]
        if len(same) == 1:
            if not label:  # the one run without overrides of its own
                labels[same[0]] = experiments[same[0]] or Path(runs[same[0]]["run_dir"]).name
            continue
        folders = [Path(runs[i]["run_dir"]).parts for i in same]
        n = 1
        while n < max(map(len, folders)) and len({f[-n:] for f in folders}) < len(folders):
            n += 1
        for i, folder in zip(same, folders):
            labels[i] = f"{label} {'/'.join(folder[-n:])}".strip()
    return [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def curve_series(runs: list[dict[str, Any]], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """{legend label: (epochs, values)} of `metric` for every run that logged it, in the table's order."""
    series = {}
    for r, label in zip(runs, curve_labels(runs)):
        xs, ys = curves(Path(r["run_dir"]), metric)
        if xs:
            series[label] = (xs, ys)
    return series


def plot(runs: list[dict[str, Any]], metric: str, out: Path) -> tuple[Path, int]:
    """One line per run of `metric` over epochs into `out` (PNG, SVG or PDF); (the file, the number of lines)."""
    from .viz.plots import lines_figure, save_figure

    series = curve_series(runs, metric)
    if not series:
        raise SystemExit(f"error: no run below the given folders logged {metric} to TensorBoard")
    return save_figure(lines_figure(series, f"{metric} by epoch", "epoch", metric), out), len(series)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="cnnlab-compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", default=["outputs"], help="run or sweep folders (default: outputs/)")
    ap.add_argument("--format", choices=["text", "md", "csv"], default="text", help="table format")
    ap.add_argument("--sort", help="a results.json key to sort by (default: each run's monitored metric)")
    ap.add_argument("--filter", action="append", metavar="GLOB", help="keep experiments matching (repeatable)")
    ap.add_argument("--latest", action="store_true",
                    help="only the newest run of each experiment (its newest finished one, if any finished)")
    ap.add_argument("--anchors", action="store_true", help="add the published figure for each experiment")
    ap.add_argument("--no-folders", action="store_true", help="leave out the run-folder column")
    ap.add_argument("--plot", metavar="FILE", help="also draw the validation curves of the runs into this file: "
                    "curves.png, or curves.svg / curves.pdf for a vector figure")
    ap.add_argument("--metric", default=None, help="the curve to plot (default: the first run's monitored metric)")
    args = ap.parse_args(argv)
    roots = [Path(f) for f in args.folders]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        print(f"error: {', '.join(missing)} is not a folder: pass run or sweep folders (paths.output_dir of your "
              f"runs)", file=sys.stderr)
        return 2
    if args.plot:
        try:
            check_output_file(args.plot, f"--plot {args.plot}", "curves.png")
            if Path(args.plot).suffix.lower() not in PLOT_FORMATS:
                raise ConfigError(f"--plot {args.plot} names no figure format: end it in .png, .svg or .pdf")
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    runs = sort_runs(select(load_runs(roots), args.filter, args.latest), args.sort)
    if not runs:
        print(f"error: no results.json under {', '.join(map(str, roots))}" +
              (f" matching {args.filter}" if args.filter else ""), file=sys.stderr)
        return 1
    print(render(table(runs, anchors=args.anchors, folders=not args.no_folders), args.format))
    if args.plot:
        metric = args.metric or next((r["monitor"] for r in runs if r.get("monitor")), "val/acc")
        path, drawn = plot(runs, metric, Path(args.plot))
        print(f"curves of {metric} ({drawn} of {len(runs)} runs; the others logged none): {path}"
              if drawn < len(runs) else f"curves of {metric}: {path}")
    return 0


def cli() -> None:
    """Console entry point."""
    sys.exit(main())
