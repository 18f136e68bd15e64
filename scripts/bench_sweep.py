#!/usr/bin/env python
"""What a sweep costs beyond its runs: one `cnnlab-train` against a grid of N runs of the same (`-m seed=0..N-1`),
same machine, one after the other; prints the ratio (goal: about N) and the per-run overhead.

    python scripts/bench_sweep.py                      # LeNet-5 on digits, 8 runs of 10 epochs
    python scripts/bench_sweep.py --runs 8 --epochs 30

The overhead per run is (sweep wall time - the runs' own wall times as a single run takes them) / N: Hydra's job
set-up, data and model building, testing and writing the results, repeated per job in one process.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args(argv)
    exe = str(Path(sys.executable).parent / "cnnlab-train")
    common = [f"trainer.epochs={args.epochs}", "trainer.progress=false"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        single = timed([exe, *common, f"hydra.run.dir={root / 'one'}"], root)
        one_train = json.loads((root / "one" / "results.json").read_text())["train_time_s"]
        seeds = ",".join(str(s) for s in range(args.runs))
        sweep = timed([exe, "-m", f"seed={seeds}", *common, f"hydra.sweep.dir={root / 'sweep'}"], root)
        trains = [json.loads(p.read_text())["train_time_s"] for p in (root / "sweep").glob("*/results.json")]
    print(f"one run: {single:.1f} s wall ({one_train:.1f} s training); a grid of {len(trains)} runs: {sweep:.1f} s "
          f"wall ({sum(trains):.1f} s training)")
    print(f"ratio grid / one run = {sweep / single:.2f} (goal: about {args.runs}); per-run cost beyond training: "
          f"{(sweep - sum(trains)) / len(trains):.2f} s in the grid vs {single - one_train:.2f} s for a lone run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
