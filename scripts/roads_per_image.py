"""Per-image patch F1 of predicted road masks, for the images of a roads checkpoint's val and test splits: which
images a model fails on, and how much of the pooled score they cost.

    cnnlab-predict ckpt_path=<run>/checkpoints/best.pt input=<folder>/training/images output=masks/
    python scripts/roads_per_image.py --ckpt <run>/checkpoints/best.pt --masks masks/ \
        --truth <folder>/training/groundtruth

The masks are cnnlab-predict's (0/255 PNGs, the threshold chosen on validation); the ground truth is read as
training reads it (road where > the checkpoint's mask_threshold). Both are scored by the task's rule (16x16
patches, road when the mean foreground > 0.25). Prints, per split, each image's patch F1 (worst first) with its
share of road patches, the pooled F1 (it matches the run's val/patch_f1 and test/patch_f1), and the pooled F1
without the worst image(s).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.checkpoint import load_checkpoint
from cnnlab.data.patches import patch_labels
from cnnlab.errors import ConfigError


def read_mask(path: Path, threshold: int) -> torch.Tensor:
    if not path.is_file():
        raise SystemExit(f"{path} not found: predict the images first (cnnlab-predict ... output=<that folder>)")
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("L")) > threshold)


def counts(pred: torch.Tensor, true: torch.Tensor) -> "tuple[int, int, int]":
    """(tp, fp, fn) of the patch labels of one predicted and one true mask."""
    p, t = (patch_labels(m[None].float(), 16, "mean", 0.25)[0].bool() for m in (pred, true))
    return int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


Row = tuple[str, tuple[int, int, int], float]  # (file name, patch (tp, fp, fn), share of road patches)


def scores(names: list[str], masks: Path, truth: Path, threshold: int) -> list[Row]:
    """(name, patch (tp, fp, fn), share of road patches in the truth) per image, in the order given."""
    rows = []
    for name in names:
        true = read_mask(truth / name, threshold)
        pred = read_mask(masks / (Path(name).stem + ".png"), 127)
        road = float(patch_labels(true[None].float(), 16, "mean", 0.25).float().mean())
        rows.append((name, counts(pred, true), road))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="a roads checkpoint (its data state names the split's files)")
    ap.add_argument("--masks", required=True, help="cnnlab-predict's output folder (<name>.png per image)")
    ap.add_argument("--truth", required=True, help="the ground-truth folder (training/groundtruth)")
    ap.add_argument("--drop", type=int, default=2, help="also print the pooled F1 without the N worst images")
    args = ap.parse_args()
    try:
        state = load_checkpoint(args.ckpt, flag="--ckpt ").get("data_state") or {}
    except ConfigError as e:  # a missing or damaged file: its one line
        raise SystemExit(str(e)) from None
    files = state.get("files")
    if not files or not state.get("patch"):
        raise SystemExit(f"{args.ckpt} is not a roads checkpoint with its split's file names")
    cut = state.get("mask_threshold")
    threshold = 0 if cut is None else int(cut)  # None: the masks hold class indices (road = 1)
    for split in ("val", "test"):
        rows = sorted(scores(files[split], Path(args.masks), Path(args.truth), threshold), key=lambda r: f1(*r[1]))
        total = np.sum([r[1] for r in rows], axis=0)
        print(f"{split}: pooled patch F1 {f1(*total):.4f} over {len(rows)} images")
        for name, c, road in rows:
            print(f"  {name:24s} patch F1 {f1(*c):.3f}  road patches {road:6.1%}  tp/fp/fn {c[0]}/{c[1]}/{c[2]}")
        if 0 < args.drop < len(rows):
            rest = np.sum([r[1] for r in rows[args.drop:]], axis=0)
            print(f"  without the {args.drop} worst: pooled patch F1 {f1(*rest):.4f}")


if __name__ == "__main__":
    main()
