#!/usr/bin/env python
"""Back-propagation by hand, as on the lecture's slide: the computational graph f(a, b) = (a + b)(b + 1).

    python scripts/backprop_by_hand.py            # a = 2, b = 1
    python scripts/backprop_by_hand.py --a -3 --b 0.5

Forward pass, node by node: c = a + b, d = b + 1, f = c * d. Backward pass by the chain rule, from the output
back: df/df = 1; df/dc = d and df/dd = c (the product's local derivatives); dc/da = 1, dc/db = 1, dd/db = 1; so
df/da = df/dc * dc/da = d and df/db = df/dc * dc/db + df/dd * dd/db = d + c (b feeds two paths: the gradients
add up). Every value is printed and then checked against torch.autograd.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional


def by_hand(a: float, b: float) -> dict[str, float]:
    """Forward values and every partial derivative of f(a, b) = (a + b)(b + 1), by the chain rule."""
    c = a + b              # node c: sum
    d = b + 1              # node d: sum with a constant
    f = c * d              # node f: product
    df_df = 1.0
    df_dc = df_df * d      # d(c*d)/dc = d
    df_dd = df_df * c      # d(c*d)/dd = c
    dc_da, dc_db, dd_db = 1.0, 1.0, 1.0
    df_da = df_dc * dc_da
    df_db = df_dc * dc_db + df_dd * dd_db  # two paths from b to f
    return {"a": a, "b": b, "c": c, "d": d, "f": f, "df/dc": df_dc, "df/dd": df_dd, "df/da": df_da, "df/db": df_db}


def by_autograd(a: float, b: float) -> dict[str, float]:
    """The same values from torch.autograd (retain_grad keeps the inner nodes' gradients)."""
    import torch

    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    c, d = ta + tb, tb + 1
    c.retain_grad()
    d.retain_grad()
    f = c * d
    f.backward()
    return {"a": a, "b": b, "c": c.item(), "d": d.item(), "f": f.item(), "df/dc": c.grad.item(),
            "df/dd": d.grad.item(), "df/da": ta.grad.item(), "df/db": tb.grad.item()}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=float, default=2.0)
    parser.add_argument("--b", type=float, default=1.0)
    args = parser.parse_args(argv)
    hand, auto = by_hand(args.a, args.b), by_autograd(args.a, args.b)
    v = hand
    print(f"forward:   c = a + b = {v['a']:g} + {v['b']:g} = {v['c']:g}")
    print(f"           d = b + 1 = {v['b']:g} + 1 = {v['d']:g}")
    print(f"           f = c * d = {v['c']:g} * {v['d']:g} = {v['f']:g}")
    print(f"backward:  df/dc = d = {v['df/dc']:g}            df/dd = c = {v['df/dd']:g}")
    print(f"           df/da = df/dc * dc/da = {v['df/dc']:g} * 1 = {v['df/da']:g}")
    print(f"           df/db = df/dc * dc/db + df/dd * dd/db = {v['df/dc']:g} * 1 + {v['df/dd']:g} * 1 = "
          f"{v['df/db']:g}")
    wrong = [k for k in hand if abs(hand[k] - auto[k]) > 1e-12]
    if wrong:
        print(f"MISMATCH with torch.autograd: {', '.join(f'{k}: {hand[k]} vs {auto[k]}' for k in wrong)}")
        return 1
    print(f"check:     torch.autograd gives the same {len(hand)} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
