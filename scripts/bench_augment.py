"""Samples/s of alexnet_small training on CIFAR-shaped data: cnnlab's on-device batched augmentation vs a
torchvision-transforms DataLoader with workers. Same model, batch size, steps and data, in one process run.

Synthetic uint8 images are written as real CIFAR-10 python pickle batches into a temp folder; (a) reads them with
cnnlab.data.cifar.build_cifar10 (decoded once, held as a tensor, BatchAugment + TensorLoader), (b) with
torchvision.datasets.CIFAR10 + RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize in workers.
Each pipeline is timed twice: data only (iterate the loader) and training (forward, backward, SGD step).

    python scripts/bench_augment.py                  # ~1-2 minutes on 2 cores
    python scripts/bench_augment.py --steps 40 --batch-size 128 --workers 4 --threads 4
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import CIFAR10

from cnnlab.data.cifar import TEST_FILE, TRAIN_FILES, build_cifar10
from cnnlab.data.common import make_loader
from cnnlab.models.alexnet import AlexNetSmall

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' writer of the real format
from fakes import dump_py2  # noqa: E402


def write_cifar_batches(folder: Path, n_train: int, n_test: int = 100, seed: int = 0) -> None:
    """Random uint8 images in the official layout: <folder>/cifar-10-batches-py/data_batch_1..5, test_batch."""
    rng = np.random.default_rng(seed)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True)
    per = -(-n_train // len(TRAIN_FILES))
    for name, n in [(f, per) for f in TRAIN_FILES] + [(TEST_FILE, n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        dump_py2({b"batch_label": name.encode(), b"labels": labels, b"data": data}, out / name)
    names = [n.encode() for n in ("airplane automobile bird cat deer dog frog horse ship truck").split()]
    dump_py2({b"label_names": names}, out / "batches.meta")


class LocalCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reader without the md5 checks (the synthetic files cannot match the official sums)."""

    train_list = [[name, None] for name in TRAIN_FILES]
    test_list = [[TEST_FILE, None]]
    meta = {**CIFAR10.meta, "md5": None}


def torchvision_loader(root: Path, mean, std, batch_size: int, workers: int) -> DataLoader:
    """The textbook pipeline: per-sample PIL crop/flip, ToTensor, Normalize in `workers` processes."""
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    ds = LocalCIFAR10(str(root), train=True, transform=tf)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))


def batches(loader: Iterable, n: int):
    """`n` batches, cycling through the loader's epochs as needed."""
    done = 0
    while True:
        for batch in loader:
            yield batch
            done += 1
            if done == n:
                return


def time_data(loader: Iterable, steps: int, warmup: int) -> float:
    """Seconds to draw `steps` batches (after `warmup` untimed ones)."""
    it = batches(loader, warmup + steps)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in it:
        pass
    return time.perf_counter() - t0


def time_training(loader: Iterable, steps: int, warmup: int, norm: str) -> float:
    """Seconds for `steps` SGD steps of alexnet_small (after `warmup` untimed ones); the same init every call."""
    torch.manual_seed(0)
    model = AlexNetSmall(num_classes=10, norm=norm).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    t0 = 0.0
    for i, (x, y) in enumerate(batches(loader, warmup + steps)):
        if i == warmup:
            t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per pipeline")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the torchvision pipeline")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads of the training process")
    ap.add_argument("--norm", default="bn", choices=["bn", "lrn", "none"], help="alexnet_small's normalisation")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (worker start-up, allocator)")
    ap.add_argument("--repeats", type=int, default=3, help="alternate the pipelines this often; report medians")
    ap.add_argument("--data-steps", type=int, default=100, help="batches drawn in the data-only timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bs = args.batch_size
    n_train = bs * (max(args.steps, args.data_steps) + args.warmup) + 100

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar_batches(root, n_train)
        t0 = time.perf_counter()
        bundle = build_cifar10(str(root), val_size=100)
        load_s = time.perf_counter() - t0
        device = torch.device("cpu")
        ours = make_loader(bundle.train, bs, True, device, augment=bundle.train_augment, drop_last=True)
        theirs = torchvision_loader(root, bundle.mean, bundle.std, bs, args.workers)
        xa, xb = next(iter(ours))[0], next(iter(theirs))[0]
        assert xa.shape == xb.shape == (bs, 3, 32, 32), (xa.shape, xb.shape)

        print(f"alexnet_small (norm={args.norm}), batch {bs}, {args.steps} timed steps (+{args.warmup} warm-up), "
              f"{args.threads} threads, torchvision workers {args.workers}, {len(bundle.train)} training images; "
              f"cnnlab one-time decode + normalise {load_s:.2f} s")
        pipelines = {"cnnlab on-device BatchAugment": ours, "torchvision DataLoader": theirs}
        rows = {label: {"data": [], "train": []} for label in pipelines}
        for _ in range(args.repeats):
            for label, loader in pipelines.items():
                rows[label]["data"].append(args.data_steps * bs / time_data(loader, args.data_steps, args.warmup))
                rows[label]["train"].append(args.steps * bs / time_training(loader, args.steps, args.warmup,
                                                                             args.norm))
        med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in rows.items()}
        print(f"{'pipeline':32s} {'data only (samples/s)':>22s} {'training (samples/s)':>22s}")
        for label, m in med.items():
            print(f"{label:32s} {m['data']:22.0f} {m['train']:22.1f}")
        a, b = med.values()
        print(f"ratio cnnlab / torchvision: data only {a['data'] / b['data']:.1f}x, "
              f"training {a['train'] / b['train']:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
