"""Benchmark: cnnlab's train loop vs a bare hand-written PyTorch loop, same model/batch/data, one process.

Prints samples/s of each (median of alternating repeats) and their ratio; with --mnist-root it then runs
`cnnlab-train experiment=lenet5_mnist` and reports the wall time and test accuracy (goal: >= 99.0 %).

    python scripts/bench_loop.py --mnist-root <folder with MNIST/raw>
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.data.common import TensorSplit, make_loader
from cnnlab.data.mnist import build_mnist
from cnnlab.engine import LoopSettings, TrainState, train_one_epoch
from cnnlab.models.lenet import LeNet5
from cnnlab.sched import build_scheduler
from cnnlab.tblog import RunLogger


def bare_epoch(model, opt, x, y, batch_size: int, gen: torch.Generator) -> float:
    """The loop everyone writes by hand: shuffle, slice, forward, loss, backward, step. Returns samples/s."""
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=gen, device=x.device)
    for lo in range(0, len(x), batch_size):
        idx = order[lo:lo + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def cnnlab_epoch(model, opt, split: TensorSplit, batch_size: int, device, log_dir: Path, net=None) -> float:
    """One epoch of cnnlab's engine (on-device loader, NaN guard, TensorBoard scalars, schedule). Samples/s.
    `net`: what runs forward (e.g. the compiled model)."""
    loader = make_loader(split, batch_size, True, device, seed=0)
    state = TrainState(model, opt, build_scheduler(opt, len(loader), len(loader), "none"), net=net)
    settings = LoopSettings(epochs=1, device=device, log_every=50, progress=False)
    logger = RunLogger(log_dir)
    out = train_one_epoch(state, loader, F.cross_entropy, settings, logger, 1)
    logger.close()
    return out["samples_per_s"]


def throughput(split: TensorSplit, batch_size: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median samples/s of (cnnlab, bare), alternating so that machine noise hits both alike."""
    torch.manual_seed(0)
    x, y = split.inputs.to(device), split.targets.to(device)
    ours, bare = [], []
    gen = torch.Generator(device=device).manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats + 1):  # the first round warms up both
            m1, m2 = LeNet5().to(device), LeNet5().to(device)
            o1 = torch.optim.SGD(m1.parameters(), lr=0.01, momentum=0.9)
            o2 = torch.optim.SGD(m2.parameters(), lr=0.01, momentum=0.9)
            a = cnnlab_epoch(m1, o1, TensorSplit(x, y), batch_size, device, Path(tmp) / str(r))
            b = bare_epoch(m2, o2, x, y, batch_size, gen)
            if r:
                ours.append(a)
                bare.append(b)
    return statistics.median(ours), statistics.median(bare)


def compiled_throughput(split: TensorSplit, batch_size: int, repeats: int, device: torch.device) -> None:
    """cnnlab's loop with `trainer.compile=true` (torch.compile, inductor) against the same loop uncompiled:
    the first compiled epoch includes the compilation; then the median of alternating epochs."""
    x, y = split.inputs.to(device), split.targets.to(device)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        m1, m2 = LeNet5().to(device), LeNet5().to(device)
        o1 = torch.optim.SGD(m1.parameters(), lr=0.01, momentum=0.9)
        o2 = torch.optim.SGD(m2.parameters(), lr=0.01, momentum=0.9)
        net = torch.compile(m1)
        start = time.perf_counter()
        cnnlab_epoch(m1, o1, TensorSplit(x, y), batch_size, device, Path(tmp) / "c0", net=net)
        first = time.perf_counter() - start
        compiled, eager = [], []
        for r in range(repeats):
            compiled.append(cnnlab_epoch(m1, o1, TensorSplit(x, y), batch_size, device, Path(tmp) / f"c{r}", net))
            eager.append(cnnlab_epoch(m2, o2, TensorSplit(x, y), batch_size, device, Path(tmp) / f"e{r}"))
    c, e = statistics.median(compiled), statistics.median(eager)
    print(f"torch.compile (inductor) on {device}: first epoch {first:.1f} s including compilation; then "
          f"{c:.0f} vs {e:.0f} samples/s uncompiled: ratio compiled/eager = {c / e:.3f}")


def run_mnist(mnist_root: str, epochs: int, out_dir: Path) -> dict:
    """`cnnlab-train experiment=lenet5_mnist trainer.epochs=E`; wall time includes start-up and data loading."""
    exe = Path(sys.executable).parent / "cnnlab-train"
    start = time.perf_counter()
    subprocess.run([str(exe), "experiment=lenet5_mnist", f"data.root={mnist_root}", f"trainer.epochs={epochs}",
                    f"hydra.run.dir={out_dir}", "trainer.progress=false"], check=True, capture_output=True)
    wall = time.perf_counter() - start
    results = json.loads((out_dir / "results.json").read_text())
    return {"wall_s": wall, "test_acc": results["test/acc"], "train_time_s": results["train_time_s"]}


def time_to_99(mnist_root: str, schedules: list[int]) -> None:
    """The one-cycle schedule's length decides when accuracy peaks: run each length, report the shortest >= 99 %."""
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in schedules:
            r = run_mnist(mnist_root, epochs, Path(tmp) / str(epochs))
            mark = "  <- reaches 99.0 %" if r["test_acc"] >= 0.99 else ""
            print(f"experiment=lenet5_mnist trainer.epochs={epochs}: test acc {r['test_acc']:.4f}; wall "
                  f"{r['wall_s']:.1f} s (training {r['train_time_s']:.1f} s){mark}")
            if r["test_acc"] >= 0.99:
                return
    print("no schedule reached 99.0 %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-root", default=None, help="folder with MNIST/raw (else random 60,000 images)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=20000, help="samples per timed epoch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-accuracy", action="store_true", help="only the throughput comparison")
    ap.add_argument("--compile", action="store_true", help="also time trainer.compile=true against eager")
    ap.add_argument("--schedules", type=int, nargs="+", default=[2, 3, 4, 8],
                    help="epochs of the one-cycle schedules tried, shortest first, for the time to 99 %%")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.mnist_root:
        split = build_mnist(args.mnist_root).train
    else:
        split = TensorSplit(torch.randn(args.samples, 1, 32, 32), torch.randint(0, 10, (args.samples,)))
    split = TensorSplit(*split.batch(slice(0, args.samples)))  # normalised float images, as the model takes them
    ours, bare = throughput(split, args.batch_size, args.repeats, device)
    print(f"device {device}, {torch.get_num_threads()} threads, LeNet-5, batch {args.batch_size}, "
          f"{len(split)} samples/epoch, median of {args.repeats}")
    print(f"  cnnlab loop : {ours:9.0f} samples/s")
    print(f"  bare loop   : {bare:9.0f} samples/s")
    print(f"  ratio cnnlab/bare = {ours / bare:.3f}  (goal >= 0.95)")
    if args.compile:
        compiled_throughput(split, args.batch_size, args.repeats, device)
    if args.mnist_root and not args.skip_accuracy:
        print("time to 99.0 % MNIST test accuracy (goal: < 120 s on 2 CPU cores):")
        time_to_99(args.mnist_root, args.schedules)


if __name__ == "__main__":
    main()
