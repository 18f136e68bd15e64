#!/usr/bin/env python
"""Regenerate a headline result: train its experiment, read the run's results.json and write its row into
docs/results.md (metrics on validation and test, seeds, training time, the machine, torch, date, the command).

    python scripts/reproduce.py --list                                  # the menu: names, data, seeds, anchors
    python scripts/reproduce.py lenet5_digits                           # no files needed
    python scripts/reproduce.py lenet5_mnist --data-root <folder>       # <folder>/MNIST/raw/*-ubyte[.gz]
    python scripts/reproduce.py sentence_cnn_sst2 --data-root <folder> --seeds 0 1 2

Each seed is one `cnnlab-train experiment=<...> data.root=<folder> seed=<s>` (run as `python -m cnnlab.train`, in
a run folder under --out); the row replaces the experiment's earlier row. The row's command writes the data folder
as `<folder>`: where a result was made is not part of how to make it again.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

RESULTS_MD = Path(__file__).resolve().parents[1] / "docs" / "results.md"
BEGIN = "<!-- rows: written by scripts/reproduce.py, one per experiment -->"
END = "<!-- end of rows -->"
COLUMNS = ("experiment", "val", "test", "seeds", "train", "wall", "machine", "threads", "torch", "date", "made",
           "command")

MNIST = "MNIST/raw/*-ubyte[.gz] (yann.lecun.com/exdb/mnist; data.download=true fetches it)"
FASHION = "FashionMNIST/raw/*-ubyte[.gz] (github.com/zalandoresearch/fashion-mnist; data.download=true)"
CIFAR = "cifar-10-batches-py/ (www.cs.toronto.edu/~kriz/cifar.html; data.download=true fetches it)"
ROADS = "training/images, training/groundtruth (the EPFL/ETH CIL road segmentation data, aicrowd.com)"
MITO = "training.tif, training_groundtruth.tif (www.epfl.ch/labs/cvlab/data/data-em)"
SST2 = "train.tsv, dev.tsv (GLUE SST-2, gluebenchmark.com/tasks)"
MR = "rt-polarity.pos, rt-polarity.neg (www.cs.cornell.edu/people/pabo/movie-review-data)"
LECUN = "LeCun et al. 1998"


@dataclass(frozen=True)
class Recipe:
    """How to make one headline result again, and what to compare it with."""

    overrides: tuple[str, ...]
    metrics: tuple[str, ...] = ("acc",)   # results.json keys without the split; the first is the headline
    anchor: str = "—"                     # the published figure, with its source
    seeds: tuple[int, ...] = (0,)
    data: str = ""                        # what data.root must hold, and where to get it ("" = no files)
    folds: tuple[int, ...] = ()           # cross-validation: one run per data.fold (and seed); the mean is the figure


RECIPES: dict[str, Recipe] = {
    "lenet5_digits": Recipe(("experiment=lenet5_digits",), seeds=(0, 1, 2, 3)),
    "mlp_digits": Recipe(("experiment=mlp_digits",)),
    "svm_features_digits": Recipe(("experiment=svm_features_digits",)),
    "svm_cs_features_digits": Recipe(("experiment=svm_features_digits", "loss=crammer_singer",
                                      "name=svm_cs_features_digits")),
    "lsq_features_digits": Recipe(("experiment=lsq_features_digits",)),
    "mlp_moons": Recipe(("experiment=mlp_moons",)),
    "linear_moons": Recipe(("model=linear", "data=moons", "trainer.epochs=40")),
    "lsq_poly1d": Recipe(("experiment=lsq_poly1d",), metrics=("mse", "r2")),
    "lenet5_mnist": Recipe(("experiment=lenet5_mnist",), anchor=f"99.05 % (0.95 % error; {LECUN})", data=MNIST),
    "lenet5_mnist_3ep": Recipe(("experiment=lenet5_mnist", "trainer.epochs=3", "name=lenet5_mnist_3ep"),
                               anchor=f"99.05 % (0.95 % error; {LECUN})", seeds=(0, 1), data=MNIST),
    "lenet5_classic_mnist": Recipe(("experiment=lenet5_classic_mnist",), anchor=f"99.05 % (0.95 % error; {LECUN})",
                                   data=MNIST),
    "mlp_mnist": Recipe(("experiment=mlp_mnist",), anchor=f"96.95 % (300+100 hidden units, 3.05 % error; {LECUN})",
                        data=MNIST),
    "svm_features_mnist": Recipe(("experiment=svm_features_mnist",), data=MNIST),
    "svm_pixels_mnist": Recipe(("experiment=svm_features_mnist", "data.features=[raw_pixels]",
                                "name=svm_pixels_mnist"), anchor=f"88 % (linear classifier, 12 % error; {LECUN})",
                               data=MNIST),
    "lenet5_fashion_mnist": Recipe(("experiment=lenet5_fashion_mnist",), data=FASHION),
    "logreg_patches_roads": Recipe(("experiment=logreg_patches_roads",), metrics=("f1", "iou"), anchor=(
                                   "patch F1 ≈ 0.51 (logistic regression on patch colour: the task's baseline)"),
                                   data=ROADS),
    "svm_patches_roads": Recipe(("experiment=svm_patches_roads",), metrics=("f1", "iou"),
                                anchor="patch F1 ≈ 0.73 (the task's 2-conv CNN baseline)", data=ROADS),
    "svm_patches_mito": Recipe(("experiment=svm_patches_mito",), metrics=("iou", "f1"),
                               anchor="IoU ≈ 0.89 (3-D U-Net; Casser et al. 2020)", data=MITO),
    "unet_roads": Recipe(("experiment=unet_roads",), metrics=("patch_f1", "f1", "iou"),
                         anchor="patch F1 0.88–0.92 (U-Nets on the task's hidden test set)", data=ROADS),
    "fcn_roads": Recipe(("experiment=fcn_roads",), metrics=("patch_f1", "f1", "iou"),
                        anchor="patch F1 0.88–0.92 (U-Nets on the task's hidden test set)", data=ROADS),
    "unet_mito": Recipe(("experiment=unet_mito",), metrics=("iou", "f1"),
                        anchor="IoU ≈ 0.89 (3-D U-Net; Casser et al. 2020)", data=MITO),
    "unet_mito_bf16": Recipe(("experiment=unet_mito", "trainer.amp=bf16", "name=unet_mito_bf16"), metrics=("iou", "f1"),
                             anchor="IoU ≈ 0.89 (3-D U-Net; Casser et al. 2020)", data=MITO),
    "sentence_cnn_sst2": Recipe(("experiment=sentence_cnn_sst2",), anchor="82.7 % (CNN-rand; Kim 2014)",
                                seeds=(0, 1, 2), data=SST2),
    "sentence_cnn_sst2_kim": Recipe(("experiment=sentence_cnn_sst2_kim",), anchor="82.7 % (CNN-rand; Kim 2014)",
                                    data=SST2),
    "sentence_cnn_mr": Recipe(("experiment=sentence_cnn_mr",), anchor="76.1 % (CNN-rand, 10 folds; Kim 2014)",
                              data=MR, folds=tuple(range(10))),
    "svm_features_cifar10": Recipe(("experiment=svm_features_cifar10",), data=CIFAR,
                                   anchor="≈ 42 % (linear SVM on HOG + colour histograms, a course figure)"),
    "alexnet_small_cifar10": Recipe(("experiment=alexnet_small_cifar10",),
                                    anchor="≈ 77 % (AlexNet-style nets of ~2.5M parameters)", data=CIFAR),
}


# ---------------------------------------------------------------- the table in docs/results.md
def _cells(line: str) -> list[str]:
    """The cells of one markdown table line; `\\|` inside a cell is a literal bar."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [part.strip().replace("\\|", "|") for part in re.split(r"(?<!\\)\|", inner)]


def parse_rows(text: str) -> list[dict[str, str]]:
    """The rows between BEGIN and END, as {column: text} (the command without its backticks)."""
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    lines = [ln for ln in text[start:stop].splitlines() if ln.strip().startswith("|")]
    header = _cells(lines[0])
    rows = []
    for line in lines[2:]:
        row = dict(zip(header, _cells(line)))
        row["command"] = row.get("command", "").strip("`")
        rows.append(row)
    return rows


def render_rows(rows: list[dict[str, str]]) -> str:
    """The table for `rows`, in COLUMNS order."""
    def cell(column: str, value: str) -> str:
        value = value.replace("|", "\\|")
        return f"`{value}`" if column == "command" and value else value
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c, row.get(c, "")) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def with_row(text: str, row: dict[str, str]) -> str:
    """`text` with `row` in place of the row of the same experiment (or added); rows in RECIPES order."""
    rows = [r for r in parse_rows(text) if r["experiment"] != row["experiment"]] + [row]
    order = {name: i for i, name in enumerate(RECIPES)}
    rows.sort(key=lambda r: order.get(r["experiment"], len(order)))
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + render_rows(rows) + "\n" + text[stop:]


# ---------------------------------------------------------------- running an experiment
def command(recipe: Recipe, seeds: "list[int]", data_root: str = "<folder>", fold: str = "<f>") -> list[str]:
    """The cnnlab-train arguments of `recipe` (the seed as `<s>` when there are several, the fold as `<f>`)."""
    seed = str(seeds[0]) if len(seeds) == 1 else "<s>"
    folds = [f"data.fold={fold}"] if recipe.folds else []
    return [*recipe.overrides, *([f"data.root={data_root}"] if recipe.data else []), *folds, f"seed={seed}"]


def seconds(value: float) -> str:
    """3.2 s, 95 s, 7.3 min."""
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def metric_cell(results: "list[dict]", split: str, metrics: "tuple[str, ...]") -> str:
    """'acc 0.9926' for one seed; 'acc 0.9851 / 0.9926 (mean 0.9889)' for several."""
    parts = []
    for name in metrics:
        values = [r[f"{split}/{name}"] for r in results if f"{split}/{name}" in r]
        if not values:
            continue
        text = " / ".join(f"{v:.4f}" for v in values)
        parts.append(f"{name} {text}" + (f" (mean {sum(values) / len(values):.4f})" if len(values) > 1 else ""))
    return "; ".join(parts)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_one(recipe: Recipe, name: str, seed: int, fold: "int | None", data_root: Optional[str],
            out: Path) -> "tuple[dict, dict, float]":
    """Train one seed (and fold); its results.json, env.json and the command's wall time in seconds."""
    tag = f"seed{seed}" + ("" if fold is None else f"_fold{fold}")
    run_dir = out / name / f"{tag}_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}"
    args = [*command(recipe, [seed], data_root or "", str(fold)), f"hydra.run.dir={run_dir}"]
    print("cnnlab-train " + " ".join(args), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnlab.train", *args], check=True)
    wall = time.perf_counter() - start
    return (json.loads((run_dir / "results.json").read_text()), json.loads((run_dir / "env.json").read_text()), wall)


def make_row(name: str, recipe: Recipe, seeds: "list[int]", results: "list[dict]", envs: "list[dict]",
             walls: "list[float]", load: float) -> dict[str, str]:
    """The docs/results.md row of a finished reproduction."""
    env = envs[0]
    per = " each" if len(results) > 1 else ""
    folds = f", folds {recipe.folds[0]}-{recipe.folds[-1]}" if recipe.folds else ""
    train = sum(r["train_time_s"] for r in results) / len(results)
    return {"experiment": name, "val": metric_cell(results, "val", recipe.metrics),
            "test": metric_cell(results, "test", recipe.metrics), "seeds": " ".join(map(str, seeds)) + folds,
            "train": seconds(train) + per, "wall": seconds(sum(walls) / len(walls)) + per,
            "machine": env["device"] if str(env.get("device", "cpu")) not in ("cpu", "", "x86_64") else cpu_model(),
            "threads": str(env.get("threads", "")), "torch": str(env.get("torch", "")),
            "date": f"{datetime.datetime.now():%Y-%m-%d}", "made": f"reproduce.py (load {load:.1f})",
            "command": "cnnlab-train " + " ".join(command(recipe, seeds))}


def menu() -> str:
    """--list: two lines per experiment."""
    lines = []
    for name, r in RECIPES.items():
        folds = f", data.fold {r.folds[0]}-{r.folds[-1]}" if r.folds else ""
        lines.append(f"{name:24} seeds {' '.join(map(str, r.seeds))}{folds}; published: {r.anchor}")
        lines.append(f"{'':24} data.root: {r.data or '(no files needed)'}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("name", nargs="?", choices=list(RECIPES), metavar="name", help="an experiment of --list")
    p.add_argument("--list", action="store_true", help="print the experiments and exit")
    p.add_argument("--data-root", help="the folder that data.root must name (see --list)")
    p.add_argument("--seeds", type=int, nargs="+", help="default: the experiment's own")
    p.add_argument("--out", type=Path, default=Path("outputs/reproduce"), help="where the run folders go")
    p.add_argument("--results", type=Path, default=RESULTS_MD, help="the markdown file that holds the rows")
    a = p.parse_args(argv)
    if a.list or not a.name:
        print(menu())
        return 0
    recipe = RECIPES[a.name]
    if recipe.data and not a.data_root:
        p.error(f"{a.name} needs --data-root <folder> holding {recipe.data}")
    if not a.results.is_file() or BEGIN not in a.results.read_text():
        p.error(f"{a.results} holds no table of rows (its first line must be: {BEGIN})")
    seeds = a.seeds or list(recipe.seeds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    folds: "list[int | None]" = list(recipe.folds) or [None]
    runs = [run_one(recipe, a.name, s, f, a.data_root, a.out) for s in seeds for f in folds]
    row = make_row(a.name, recipe, seeds, *map(list, zip(*runs)), load=load)
    a.results.write_text(with_row(a.results.read_text(), row))
    print(render_rows([row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
