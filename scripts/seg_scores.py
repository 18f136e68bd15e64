#!/usr/bin/env python
"""Scores of a segmentation checkpoint on whole images of a split: pixel F1/IoU of the foreground class and, for
roads, the task's patch F1 (16x16 patches, road when the patch's mean predicted foreground > 0.25), at several
decision thresholds t on the foreground probability (pixels: p > t; also shown: a patch is road when its mean p > t).

    PYTHONPATH=src python scripts/seg_scores.py outputs/.../checkpoints/best.pt --split val
    PYTHONPATH=src python scripts/seg_scores.py best.pt --split val --data-root /work/shared/data/roads --tile 512

The data are rebuilt from the checkpoint's saved config (data.root replaced by --data-root when given). Choose a
threshold on val; report test only once, at the threshold val chose.
"""
from __future__ import annotations

import argparse
import time

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cnnlab.checkpoint import load_checkpoint
from cnnlab.data.patches import patch_labels
from cnnlab.run import build_model
from cnnlab.tiling import dihedral_mean_probs, tiled_logits


def f1_iou(pred: torch.Tensor, true: torch.Tensor) -> "tuple[float, float]":
    """F1 and IoU of the positive class of two boolean tensors."""
    tp = (pred & true).sum().item()
    fp, fn = (pred & ~true).sum().item(), (~pred & true).sum().item()
    return 2 * tp / max(2 * tp + fp + fn, 1), tp / max(tp + fp + fn, 1)


@torch.no_grad()
def foreground_probs(model: torch.nn.Module, split, batch: int, tile: int, overlap: int,
                     tta: bool = False) -> torch.Tensor:
    """P(class 1) for every pixel of every image of `split`, float [N,H,W] (tta: mean over the 8 flips/turns)."""
    net = (lambda x: tiled_logits(model, x, tile, overlap)) if tile else model
    out = []
    for lo in range(0, len(split), batch):
        x, _ = split.batch(slice(lo, lo + batch))
        probs = dihedral_mean_probs(net, x) if tta else net(x).float().softmax(1)
        out.append(probs[:, 1])
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--data-root", default=None)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tile", type=int, default=0, help="tile side for tiled inference (0 = whole images)")
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--tta", action="store_true", help="average over the 8 flips/turns of each image")
    args = p.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    cfg = OmegaConf.create(ckpt["config"])
    if args.data_root:
        cfg.data.root = args.data_root
    bundle = instantiate(cfg.data)
    model = build_model(cfg.model, bundle)
    model.load_state_dict(ckpt["model"])
    model.eval()
    split = getattr(bundle, args.split)
    start = time.perf_counter()
    probs = foreground_probs(model, split, args.batch, args.tile, args.overlap, args.tta)
    seconds = time.perf_counter() - start
    true = split.targets.bool()
    patch = bundle.state.get("patch_size")
    print(f"{args.ckpt}: {args.split} split, {len(split)} images, epoch {ckpt['epoch']}, "
          f"inference {seconds:.1f}s{' (8x test-time augmentation)' if args.tta else ''}")
    for t in args.thresholds:
        pred = probs > t
        f1, iou = f1_iou(pred, true)
        line = f"threshold {t:.2f}: pixel F1 {f1:.4f} IoU {iou:.4f}"
        if patch:
            rule = bundle.state["patch_threshold"]
            pf1, _ = f1_iou(patch_labels(pred.long(), patch, "mean", rule).bool(),
                            patch_labels(true.long(), patch, "mean", rule).bool())
            # alternative decision: the patch's mean foreground probability > t (no pixel threshold first)
            mean_prob = probs.unflatten(1, (-1, patch)).unflatten(3, (-1, patch)).mean(dim=(2, 4))
            mf1, _ = f1_iou(mean_prob > t, patch_labels(true.long(), patch, "mean", rule).bool())
            line += f"  patch F1 {pf1:.4f} (mean prob > t: {mf1:.4f})"
        print(line)


if __name__ == "__main__":
    main()
