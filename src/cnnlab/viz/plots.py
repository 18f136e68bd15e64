"""Plots with axes, drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display): training
curves of several runs, fitted 1-D curves, decision regions of a 2-D classifier; 120 dpi, at least 1,000 px wide, in
the Okabe-Ito colours (Okabe & Ito, "Color Universal Design", 2008), which colour-blind readers tell apart."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

# Okabe-Ito without yellow (too pale on white) and black (kept for data points)
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")
LINE_STYLES = ("-", "--", ":", "-.")  # after the six colours, the same colours again in another style
MARKERS = ("o", "s", "D", "^")
SIZE, DPI = (10.0, 5.6), 120
STYLE = {"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 11, "axes.grid": True, "grid.alpha": 0.3}
VECTOR = {".svg": "svg", ".pdf": "pdf"}
LABEL_CHARS = 48  # a legend label longer than this is wrapped onto more lines, never cut
styled = matplotlib.rc_context(STYLE)  # a decorator: STYLE's font sizes and grid while a figure is made


def new_figure(size: tuple[float, float] = SIZE) -> tuple[Figure, object]:
    """A figure with one axes, laid out by matplotlib's constrained layout (labels and an outside legend fit)."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_figure(fig: Figure, path: "str | Path") -> Path:
    """Write `fig` as SVG or PDF when the file name ends so, otherwise as PNG (parent folders created); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=VECTOR.get(path.suffix.lower(), "png"), dpi=DPI, facecolor="white")
    return path


def as_image(fig: Figure) -> Tensor:
    """The figure rendered on the Agg canvas as a [3,H,W] float tensor in [0,1] (TensorBoard's add_image)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255


def _legend(fig: Figure, entries: int, longest: int) -> None:
    """The legend outside the axes: at the right for a few short labels, else below in as many columns as fit."""
    if entries <= 8 and longest <= 32:
        fig.legend(loc="outside right upper", frameon=False)
        return
    ncols = max(1, min(entries, 4, 110 // (longest + 8)))
    rows = -(-entries // ncols)
    fig.set_figheight(fig.get_figheight() + 0.25 * rows)  # the axes keep their height
    fig.legend(loc="outside lower center", ncols=ncols, frameon=False)


@styled
def lines_figure(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str,
                 ylabel: str) -> Figure:
    """One line per named (xs, ys) series (e.g. runs' validation curves), each label whole in the legend."""
    # lines share a colour only after six, and then differ in line style and marker
    fig, ax = new_figure()
    labels = {name: textwrap.fill(name, LABEL_CHARS) for name in series}
    for c, (name, (xs, ys)) in enumerate(series.items()):
        k = c // len(OKABE_ITO)
        ax.plot(xs, ys, color=OKABE_ITO[c % len(OKABE_ITO)], linestyle=LINE_STYLES[k % len(LINE_STYLES)],
                marker=MARKERS[k % len(MARKERS)] if len(xs) <= 60 else None, markersize=4, linewidth=1.8,
                label=labels[name])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    longest = max((len(line) for label in labels.values() for line in label.split("\n")), default=0)
    _legend(fig, len(series), longest)
    return fig


@styled
def curves_figure(points: Tensor, targets: Tensor, xs: Tensor, curves: dict[str, Tensor], title: str,
                  truth: Optional[Tensor] = None) -> Figure:
    """1-D regression: the data points (black), each named fitted curve and the true function (dashed grey)."""
    fig, ax = new_figure()
    if truth is not None:
        ax.plot(xs, truth, color="0.5", linestyle="--", linewidth=1.5, label="true function")
    for c, (name, ys) in enumerate(curves.items()):
        ax.plot(xs, ys.flatten(), color=OKABE_ITO[c % len(OKABE_ITO)], linewidth=2, label=name)
    ax.scatter(points.flatten(), targets.flatten(), color="black", s=28, zorder=3, label="training points")
    y = torch.cat([targets.flatten(), *([truth.flatten()] if truth is not None else [])])  # a wild fit leaves the axes
    pad = 0.35 * float(y.max() - y.min() or 1.0)
    ax.set(title=title, xlabel="x", ylabel="y", ylim=(float(y.min()) - pad, float(y.max()) + pad),
           xlim=(float(xs.min()), float(xs.max())))
    _legend(fig, len(curves) + 1 + (truth is not None), max(len(n) for n in [*curves, "training points"]))
    return fig


@styled
def decision_boundary_figure(probs: Tensor, lo: Sequence[float], hi: Sequence[float], points: Tensor,
                             labels: Tensor, class_names: Sequence[str], title: str) -> Figure:
    """2-D decision regions from `probs` [K,G,G] on a grid over [lo, hi] (row 0 = top), paler where less sure."""
    k = probs.shape[0]
    colours = torch.tensor([[int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)] for h in OKABE_ITO])
    conf, cls = probs.max(0)
    strength = ((conf - 1 / k) / (1 - 1 / k)).clamp(0, 1)[..., None]  # 0 on the boundary, 1 where certain
    tint = 1 - (1 - (colours[cls % len(OKABE_ITO)] * 0.45 + 0.55)) * strength  # [G,G,3]
    fig, ax = new_figure((9.0, 6.4))
    ax.imshow(tint.numpy(), extent=(lo[0], hi[0], lo[1], hi[1]), origin="upper", interpolation="bilinear",
              aspect="auto")
    for c, name in enumerate(class_names):
        mine = labels == c
        ax.scatter(points[mine, 0], points[mine, 1], color=OKABE_ITO[c % len(OKABE_ITO)],
                   marker=MARKERS[(c // len(OKABE_ITO)) % len(MARKERS)], s=30, edgecolors="white", linewidths=0.8,
                   label=str(name))
    ax.set(title=title, xlabel="x1", ylabel="x2", xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.grid(False)
    _legend(fig, len(class_names), max(len(str(n)) for n in class_names))
    return fig
