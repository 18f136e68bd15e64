#!/usr/bin/env python
"""Large image trees (ImageNet layout, `data=imagefolder` on disk): decoded and augmented training images per
second through cnnlab's DataLoader path against torchvision's reference pipeline on the same files, per CPU core
(one worker process = one core), and the worker count a GPU would need.

    python scripts/bench_imagefolder.py                          # 640 generated 500x375 JPEGs, 10 classes
    python scripts/bench_imagefolder.py --root /data/imagenet/train --images 2000 --gpu-rate 3000

(a) torchvision's reference: datasets.ImageFolder + RandomResizedCrop(224), RandomHorizontalFlip, ToTensor,
    Normalize in the workers (float32 batches cross the process boundary);
(b) cnnlab: build_imagefolder(in_memory=false): the same crops and flips on uint8 images in the workers (uint8
    batches: 4x fewer bytes between processes), normalised per batch where the batch lands (the training device).
Same files, batch size and worker count, timed alternately; `--gpu-rate` (images/s your GPU trains at, e.g. from
scripts/bench_loop.py on it) turns images/s per worker into the number of workers that keeps it busy.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image


def write_tree(root: Path, images: int, classes: int = 10, size: tuple[int, int] = (500, 375)) -> Path:
    """`images` JPEGs of `size` (ImageNet's typical size) with smooth random content, `classes` class folders."""
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class_{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.integers(0, 255, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize(size, Image.BICUBIC)  # photo-like smooth content (JPEG-friendly)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    return root


def rate(loader, device: torch.device, batches: int, prepare=None) -> float:
    """Images per second over `batches` batches (after one warm-up batch), moved to `device` and prepared."""
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        if prepare is not None:
            x, y = prepare(x, y)
        n += len(x)
    return n / (time.perf_counter() - start)


def reference_loader(root: Path, size: int, batch: int, workers: int):
    from torchvision import datasets, transforms as T

    tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    return torch.utils.data.DataLoader(datasets.ImageFolder(str(root), tf), batch_size=batch, shuffle=True,
                                       num_workers=workers, persistent_workers=workers > 0)


def cnnlab_loader(root: Path, size: int, batch: int, workers: int):
    from cnnlab.data.imagefolder import build_imagefolder

    bundle = build_imagefolder(str(root), image_size=size, in_memory=False, val_fraction=0.05)
    split = bundle.train
    loader = torch.utils.data.DataLoader(split, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    return loader, split.prepare


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="an ImageNet-layout folder (<root>/<class>/<image>); default: generated JPEGs")
    ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gpu-rate", type=float, default=0.0, help="images/s the GPU trains at (for the worker count)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else write_tree(Path(tmp), args.images)
        print(f"{root}: batch {args.batch_size}, {args.size}x{args.size} crops, medians of {args.repeats}")
        for w in args.workers:
            ours_loader, prepare = cnnlab_loader(root, args.size, args.batch_size, w)
            theirs_loader = reference_loader(root, args.size, args.batch_size, w)
            ours, theirs = [], []
            for _ in range(args.repeats):
                theirs.append(rate(theirs_loader, device, args.batches))
                ours.append(rate(ours_loader, device, args.batches, prepare))
            a, b = statistics.median(ours), statistics.median(theirs)
            del ours_loader, theirs_loader  # end the workers before the files go
            print(f"  {w} worker(s): cnnlab {a:7.1f} images/s ({a / w:6.1f} per core)   torchvision reference "
                  f"{b:7.1f} images/s ({b / w:6.1f} per core)   ratio {a / b:.2f}")
            if args.gpu_rate:
                print(f"    a GPU training at {args.gpu_rate:.0f} images/s needs about "
                      f"{math.ceil(args.gpu_rate / (a / w))} cnnlab workers (CPU cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
