#!/usr/bin/env python
"""The machine-learning recap through cnnlab's own loop: least-squares polynomial fits of noisy samples of sin(pi x),
linear, quadratic, degree 9, and degree 9 with the l2 penalty (weight decay) chosen on the validation points.

    python scripts/least_squares_recap.py --out docs/img/least_squares.png      # ~2-4 minutes on 2 cores

Each fit is `cnnlab-train experiment=lsq_poly1d data.degree=D optim.weight_decay=L` (full-batch gradient descent
on the squared error; Legendre features, so gradient descent gets near the least-squares solution). The figure
draws every final fit over the training points and the true function, and the table gives the train / validation /
test MSE of the final weights. A closed-form ridge solve (cnnlab.losses.ridge_closed_form) on the same training
points is printed beside each fit as a check of the loop.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch

from cnnlab.checkpoint import load_checkpoint
from cnnlab.data.toy import FUNCTIONS, build_poly1d, poly_features
from cnnlab.losses import ridge_closed_form
from cnnlab.viz.plots import curves_figure, save_figure

LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)


def fit(degree: int, lam: float, out: Path, epochs: int) -> dict:
    """Train one fit with the CLI; (weights, bias) of last.pt and the final epoch's validation MSE."""
    run = out / f"d{degree}_l{lam:g}"
    subprocess.run([str(Path(sys.executable).parent / "cnnlab-train"), "experiment=lsq_poly1d",
                    f"data.degree={degree}", f"optim.weight_decay={lam}", f"trainer.epochs={epochs}",
                    f"hydra.run.dir={run}", "trainer.progress=false", "trainer.tensorboard=false"],
                   check=True, capture_output=True)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    return {"w": state["model"]["linear.weight"], "b": state["model"]["linear.bias"],
            "val_mse": state["history"][-1]["val/mse"]}


def mse(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(((x @ w.T + b - y) ** 2).mean())


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="least_squares.png", help="the figure: .png, or .svg / .pdf for a vector one")
    ap.add_argument("--epochs", type=int, default=1500, help="full-batch gradient steps per fit")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {(d, 0.0): fit(d, 0.0, Path(tmp), args.epochs) for d in (1, 2, 9)}
        ridge = {lam: fit(9, lam, Path(tmp), args.epochs) for lam in LAMBDAS}
    best = min(ridge, key=lambda lam: ridge[lam]["val_mse"])  # chosen on validation, never on test
    runs[(9, best)] = ridge[best]
    xs = torch.linspace(-1, 1, 200)
    print("| fit | train MSE | val MSE | test MSE | max |w - closed-form ridge w| |\n|---|---|---|---|---|")
    curves = {}
    for (degree, lam), r in runs.items():
        data = build_poly1d(degree=degree)
        split = {s: getattr(data, s) for s in ("train", "val", "test")}
        errors = [mse(r["w"], r["b"], split[s].inputs, split[s].targets) for s in split]
        w_ridge, _ = ridge_closed_form(split["train"].inputs, split["train"].targets, lam)
        name = f"degree {degree}" + (f", l2 λ = {lam:g}" if lam else "")
        print(f"| {name} | {errors[0]:.4f} | {errors[1]:.4f} | {errors[2]:.4f} | "
              f"{float((r['w'] - w_ridge).abs().max()):.3g} |")
        curves[name] = poly_features(xs, degree) @ r["w"].T + r["b"]
    train = build_poly1d(degree=1).train
    fig = curves_figure(train.inputs[:, 0], train.targets, xs, curves,
                        f"least squares on 12 noisy samples of sin(πx) (λ = {best:g} chosen on validation)",
                        truth=FUNCTIONS["sin"](xs))
    print(f"figure: {save_figure(fig, args.out)}")
    print(json.dumps({"lambda_chosen_on_validation": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
