#!/usr/bin/env python
"""Put finished runs side by side: reads every results.json under a folder and prints a markdown table.

    python scripts/compare_runs.py                       # all runs under outputs/
    python scripts/compare_runs.py /tmp/out --latest     # the newest run of each experiment
    python scripts/compare_runs.py --filter 'svm_*' --filter 'lenet5_*' --anchors

Columns: experiment, model, data, loss, test acc / macro-F1 / F1 / IoU (F1 and IoU of class 1 for two-class
tasks, blank where absent), train time (s, summed epoch times), epochs, and the run folder.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

# Published figures (DESIGN.md) next to the experiments they belong to: (what, value as text).
ANCHORS: dict[str, tuple[str, str]] = {
    "svm_pixels_mnist": ("linear classifier on pixels, MNIST (LeCun 1998): 12 % error", "acc 0.88"),
    "lenet5_mnist": ("LeNet-5, MNIST (LeCun 1998): 0.95 % error", "acc 0.9905"),
    "lenet5_classic_mnist": ("LeNet-5, MNIST (LeCun 1998): 0.95 % error", "acc 0.9905"),
    "logreg_patches_roads": ("logistic regression on patch colour, CIL roads", "F1 ≈ 0.51"),
    "svm_patches_roads": ("CNN reference: small 2-conv CNN, CIL roads", "F1 ≈ 0.73"),
    "svm_patches_mito": ("CNN reference: 3D U-Net, EPFL mitochondria", "IoU ≈ 0.89"),
    "svm_features_cifar10": ("SVM on HOG + colour histogram, CIFAR-10", "acc ≈ 0.42"),
}
METRICS = (("test acc", "test/acc"), ("test macro-F1", "test/macro_f1"), ("test F1", "test/f1"),
           ("test IoU", "test/iou"))


def load_runs(root: Path) -> list[dict[str, Any]]:
    """Every readable results.json under `root` (recursively), each with its folder under the key `run_dir`."""
    runs = []
    for path in sorted(root.rglob("results.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        if isinstance(data, dict):
            data["run_dir"] = str(path.parent)
            data["_mtime"] = path.stat().st_mtime
            runs.append(data)
    return runs


def select(runs: Iterable[dict[str, Any]], patterns: Optional[list[str]] = None,
           latest: bool = False) -> list[dict[str, Any]]:
    """Runs whose experiment name matches any glob in `patterns`; with `latest`, only the newest per experiment."""
    chosen = [r for r in runs if not patterns or any(fnmatch.fnmatch(str(r.get("experiment", "")), p)
                                                     for p in patterns)]
    if latest:
        newest: dict[str, dict[str, Any]] = {}
        for r in chosen:
            name = str(r.get("experiment", ""))
            if name not in newest or r["_mtime"] > newest[name]["_mtime"]:
                newest[name] = r
        chosen = list(newest.values())
    return sorted(chosen, key=lambda r: (str(r.get("experiment", "")), r["_mtime"]))


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def markdown_table(runs: list[dict[str, Any]], anchors: bool = False, folders: bool = True) -> str:
    """The runs as a markdown table (one row each); `anchors` adds the published figure where one is known."""
    head = ["experiment", "model", "data", "loss", *[m for m, _ in METRICS], "train time (s)", "epochs"]
    head += ["published anchor"] if anchors else []
    head += ["run folder"] if folders else []
    rows = [head, ["---"] * len(head)]
    for r in runs:
        row = [str(r.get(k, "")) for k in ("experiment", "model", "data", "loss")]
        row += [_number(r.get(key)) for _, key in METRICS]
        row += [_number(r.get("train_time_s"), 1), str(r.get("epochs", ""))]
        if anchors:
            what, value = ANCHORS.get(str(r.get("experiment", "")), ("", ""))
            row.append(f"{value} ({what})" if what else "")
        if folders:
            row.append(str(r["run_dir"]))
        rows.append(row)
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="outputs", help="folder searched for results.json (outputs/)")
    parser.add_argument("--filter", action="append", metavar="GLOB",
                        help="keep experiments matching this glob (repeatable), e.g. 'svm_*'")
    parser.add_argument("--latest", action="store_true", help="only the newest run of each experiment")
    parser.add_argument("--anchors", action="store_true", help="add the published figure for each experiment")
    parser.add_argument("--no-folders", action="store_true", help="leave out the run-folder column")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root} is not a folder (pass the paths.output_dir of your runs)", file=sys.stderr)
        return 2
    runs = select(load_runs(root), args.filter, args.latest)
    if not runs:
        print(f"error: no results.json under {root}" + (f" matching {args.filter}" if args.filter else ""),
              file=sys.stderr)
        return 1
    print(markdown_table(runs, anchors=args.anchors, folders=not args.no_folders))
    return 0


if __name__ == "__main__":
    sys.exit(main())
