"""Benchmark: training sentences/s of cnnlab's loop vs a bare hand-written PyTorch loop, same SentenceCNN, same
batches (int32 ids on the device, each batch cut to its longest sentence), one process.

cnnlab: `make_loader` (on-device TensorLoader + the split's `prepare`) and `engine.train_one_epoch` (NaN guard,
TensorBoard scalars, schedule, the model's max-norm `after_step`). Bare: randperm, gather, trim, forward, loss,
backward, step, max-norm. Medians of alternating repeats; prints the ratio (goal >= 0.95).

    python scripts/bench_text.py --sst2-root <folder with train.tsv>   # else the procedural sentiment corpus
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.data.common import TensorSplit, make_loader
from cnnlab.data.sentiment import build_sentiment_synthetic
from cnnlab.data.text import lengths
from cnnlab.data.textsets import build_sst2
from cnnlab.engine import LoopSettings, TrainState, train_one_epoch
from cnnlab.models.sentence_cnn import SentenceCNN
from cnnlab.sched import build_scheduler
from cnnlab.tblog import RunLogger


def bare_epoch(model, opt, x, y, batch_size: int, min_len: int, seed: int = 0) -> float:
    """The loop everyone writes by hand, with the same shuffle (seed) and per-batch trimming. Returns sentences/s."""
    model.train()
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=torch.Generator(device=x.device).manual_seed(seed), device=x.device)
    for lo in range(0, len(x), batch_size):
        idx = order[lo:lo + batch_size]
        xb = x[idx]
        xb = xb[:, :max(int(lengths(xb).max()), min_len)].long()
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def cnnlab_epoch(model, opt, split: TensorSplit, batch_size: int, device, log_dir: Path) -> float:
    """One epoch of cnnlab's engine over the split's on-device loader. Sentences/s."""
    loader = make_loader(split, batch_size, True, device, seed=0)
    state = TrainState(model, opt, build_scheduler(opt, len(loader), len(loader), "none"))
    settings = LoopSettings(epochs=1, device=device, log_every=50, progress=False)
    logger = RunLogger(log_dir)
    out = train_one_epoch(state, loader, F.cross_entropy, settings, logger, 1)
    logger.close()
    return out["samples_per_s"]


def throughput(split: TensorSplit, vocab_size: int, batch_size: int, repeats: int, embed_dim: int,
               device: torch.device) -> "tuple[float, float]":
    """Median sentences/s of (cnnlab, bare), alternating (also which goes first) so that machine noise hits both
    alike. Both start from the same weights and see the same batches, so they end with the same weights (printed
    as a check)."""
    x, y = split.inputs.to(device), split.targets.to(device)
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats + 1):  # the first round warms up both
            torch.manual_seed(r)
            m1 = SentenceCNN(vocab_size, embed_dim=embed_dim, dropout=0.0).to(device)  # no dropout: same maths
            m2 = SentenceCNN(vocab_size, embed_dim=embed_dim, dropout=0.0).to(device)
            m2.load_state_dict(m1.state_dict())
            # fused Adam, as the sst2 recipe: the cheaper the step, the more any loop overhead would show
            o1, o2 = (torch.optim.Adam(m.parameters(), lr=1e-3, fused=True) for m in (m1, m2))
            runs = {"cnnlab": partial(cnnlab_epoch, m1, o1, TensorSplit(x, y, split.prepare), batch_size, device,
                                      Path(tmp) / str(r)),
                    "bare": partial(bare_epoch, m2, o2, x, y, batch_size, split.prepare.min_len)}
            order = ("bare", "cnnlab") if r % 2 else ("cnnlab", "bare")  # neither always inherits warm caches
            speed = {name: runs[name]() for name in order}
            a, b = speed["cnnlab"], speed["bare"]
            diff = max((p1 - p2).abs().max().item() for p1, p2 in zip(m1.parameters(), m2.parameters()))
            if r:
                ours.append(a)
                bare.append(b)
            print(f"  round {r}: cnnlab {a:8.0f}  bare {b:8.0f} sentences/s; max weight difference after the "
                  f"epoch {diff:.1e}{'  (warm-up)' if not r else ''}")
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sst2-root", default=None, help="folder with GLUE SST-2 train.tsv/dev.tsv")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--sentences", type=int, default=10000, help="training sentences per timed epoch")
    ap.add_argument("--embed-dim", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.sst2_root:
        bundle = build_sst2(args.sst2_root)
    else:
        bundle = build_sentiment_synthetic(num_train=args.sentences, num_val=10, num_test=10)
    split = bundle.train
    split = TensorSplit(split.inputs[:args.sentences], split.targets[:args.sentences], split.prepare)
    print(f"device {device}, {torch.get_num_threads()} threads, SentenceCNN (rand, {args.embed_dim}-d), batch "
          f"{args.batch_size}, {len(split)} {bundle.name} sentences/epoch, median of {args.repeats}")
    ours, bare = throughput(split, bundle.model_kwargs["vocab_size"], args.batch_size, args.repeats,
                            args.embed_dim, device)
    print(f"  cnnlab loop : {ours:9.0f} sentences/s")
    print(f"  bare loop   : {bare:9.0f} sentences/s")
    print(f"  ratio cnnlab/bare = {ours / bare:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
