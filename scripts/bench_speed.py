#!/usr/bin/env python
"""Training throughput of the four model families through `cnnlab-train` itself, plain and with the trainer's speed
options (AMP, torch.compile, channels_last), one run each, in one table with the ratio to the plain run.

    python scripts/bench_speed.py                      # on the GPU if there is one, else the CPU
    python scripts/bench_speed.py --models lenet5 unet --modes plain bf16 compile bf16+compile
    python scripts/bench_speed.py --quick              # small sizes: checks that every combination runs

Each run trains on generated data (`data=synthetic`, `roads_synthetic`, `sentiment_synthetic`, so no files are
needed) for `--epochs` epochs; the figure is the median samples/s of the epochs after the first (the first holds
compilation and warm-up), read from the run's train.log. On a CPU with native bfloat16 (AMX or AVX512-BF16)
`trainer.amp=bf16` autocasts there too; on other CPUs `trainer.amp` is ignored with a notice, so the AMP rows measure
the notice's cost only.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

# model -> (overrides, overrides for --quick); batch sizes are those of the recipes
MODELS = {
    "lenet5": (["model=lenet5", "data=synthetic", "data.num_samples=30000", "trainer.batch_size=128"],
               ["data.num_samples=512"]),
    "alexnet_small": (["model=alexnet_small", "data=synthetic", "data.channels=3", "data.num_samples=10000",
                       "trainer.batch_size=128"], ["data.num_samples=256"]),
    "unet": (["model=unet", "data=roads_synthetic", "data.num_images=160", "data.size=256", "data.augment.crop=256",
              "model.base=24", "trainer.batch_size=8"], ["data.num_images=16", "data.size=64", "data.augment.crop=64"]),
    "sentence_cnn": (["model=sentence_cnn", "data=sentiment_synthetic", "data.num_train=20000", "optim=adam",
                      "+optim.fused=true",
                      "trainer.batch_size=50"], ["data.num_train=500"]),
}
MODES = {"plain": [], "bf16": ["trainer.amp=bf16"], "fp16": ["trainer.amp=fp16"], "compile": ["trainer.compile=true"],
         "bf16+compile": ["trainer.amp=bf16", "trainer.compile=true"], "channels_last": ["trainer.channels_last=true"]}
EPOCH_LINE = re.compile(r"epoch \d+/\d+ .*\(([\d.]+)s, (\d+) samples/s\)")


def samples_per_s(log: str) -> Optional[float]:
    """Median samples/s of the epochs after the first, from a train.log."""
    rates = [float(m.group(2)) for m in EPOCH_LINE.finditer(log)]
    return statistics.median(rates[1:]) if len(rates) > 1 else None


def run(model: str, mode: str, device: str, epochs: int, quick: bool, root: Path) -> "tuple[Optional[float], str]":
    """(samples/s or None, the error line when the run failed)."""
    base, small = MODELS[model]
    folder = root / f"{model}_{mode}"
    args = [str(Path(sys.executable).parent / "cnnlab-train"), *base, *(small if quick else []), *MODES[mode],
            f"trainer.device={device}", f"trainer.epochs={epochs}", "trainer.pictures_every=1000",
            "trainer.tensorboard=false", "trainer.progress=false", "trainer.eval_batch_size=64",
            f"hydra.run.dir={folder}"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=root)
    log = (folder / "train.log").read_text() if (folder / "train.log").is_file() else ""
    if out.returncode != 0:
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")] or out.stderr.splitlines()
        return None, (errors[-1] if errors else f"exit status {out.returncode}")[:100]
    notices = [line.split(" - ", 1)[-1] for line in log.splitlines() if " - trainer." in line]  # e.g. AMP ignored
    return samples_per_s(log), (notices[0][:100] if notices else "")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--modes", nargs="+", default=["plain", "bf16", "compile", "bf16+compile"], choices=list(MODES))
    ap.add_argument("--device", default="auto", help="auto (CUDA if present) | cpu | cuda")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small data: every combination runs, numbers mean little")
    args = ap.parse_args(argv)
    print("| model | mode | samples/s | vs plain | note |\n|---|---|---:|---:|---|", flush=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            plain = None
            for mode in args.modes:
                rate, note = run(model, mode, args.device, args.epochs, args.quick, Path(tmp))
                failed += rate is None
                plain = rate if mode == "plain" else plain
                ratio = f"{rate / plain:.2f}x" if rate and plain else ""
                print(f"| {model} | {mode} | {rate or 'failed'} | {ratio} | {note} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
