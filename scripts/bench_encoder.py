#!/usr/bin/env python
"""Training-step throughput of the roads U-Nets (the recipe's, the same at full resolution, the ResNet-34 encoder
one), on 8 random 256x256 crops, the models interleaved step by step so that all see the same machine load; the
first round warms up.

    python scripts/bench_encoder.py --rounds 4
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnlab.models.unet import UNet


def main(argv: "list[str] | None" = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    nets = {"unet_roads (base 24, depth 4, downsample 2)": UNet(2, 3, base=24, depth=4, downsample=2),
            "U-Net base 24, depth 4, full resolution": UNet(2, 3, base=24, depth=4),
            "unet_resnet34_roads (ResNet-34 encoder, base 32)": UNet(2, 3, base=32, encoder="resnet34")}
    opts = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in nets.items()}
    x, y = torch.randn(8, 3, 256, 256), torch.randint(0, 2, (8, 256, 256))
    times: dict[str, list[float]] = {k: [] for k in nets}
    for r in range(args.rounds):
        for k, m in nets.items():
            t = time.perf_counter()
            loss = F.cross_entropy(m.train()(x), y)
            opts[k].zero_grad()
            loss.backward()
            opts[k].step()
            if r:
                times[k].append(time.perf_counter() - t)
    for k, v in times.items():
        n = sum(p.numel() for p in nets[k].parameters())
        print(f"{k}: {8 / statistics.median(v):.2f} samples/s (median of {len(v)} steps), {n / 1e6:.1f} M parameters")


if __name__ == "__main__":
    main()
