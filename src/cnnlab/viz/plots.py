"""Plots of low-dimensional data, drawn with PIL: decision regions of a 2-D classifier, fitted 1-D curves."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from .draw import LINE, PAD, font, from_pil, text_fit, to_pil


PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75))


def _plot_frame(size: int, lo: Sequence[float], hi: Sequence[float], title: str, xlabel: str, ylabel: str,
                legend: tuple[int, int] = (140, 0)) -> tuple[Image.Image, ImageDraw.ImageDraw, int, int]:
    """A white sheet with a title, an empty square plot of `size` px, axis labels and the axis ranges, and room on
    the right for a legend of `legend` = (width px, entries)."""
    fnt = font()
    left, top = 3 * PAD + LINE, 2 * PAD + LINE
    sheet = Image.new("RGB", (left + size + 3 * PAD + legend[0],
                              max(top + size + 2 * LINE, top + legend[1] * LINE) + 2 * PAD), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), title, fill="black", font=fnt)
    draw.rectangle([left - 1, top - 1, left + size, top + size], outline="black")
    draw.text((left, top + size + 2), f"{lo[0]:.2g}", fill="black", font=fnt)
    draw.text((left + size, top + size + 2), f"{hi[0]:.2g}", fill="black", font=fnt, anchor="ra")
    draw.text((left + size / 2, top + size + 2), xlabel, fill="black", font=fnt, anchor="ma")
    draw.text((left - 3, top + size), f"{lo[1]:.2g}", fill="black", font=fnt, anchor="rb")
    draw.text((left - 3, top), f"{hi[1]:.2g}", fill="black", font=fnt, anchor="rt")
    draw.text((PAD, top + size / 2), ylabel, fill="black", font=fnt, anchor="lm")
    return sheet, draw, left, top


def decision_boundary_figure(probs: Tensor, lo: Sequence[float], hi: Sequence[float], points: Tensor,
                             labels: Tensor, class_names: Sequence[str], title: str) -> Tensor:
    """2-D decision regions: `probs` [K,G,G] of the model on a grid over [lo, hi] (row 0 = top, i.e. the highest
    y), tinted by the predicted class (paler where it is less sure), with the points in their class colours."""
    k, g, _ = probs.shape
    size = 360
    colours = torch.tensor(PALETTE[:k], dtype=torch.float32).T / 255  # [3,K]
    conf, cls = probs.max(0)
    strength = ((conf - 1 / k) / (1 - 1 / k)).clamp(0, 1)  # 0 on the boundary, 1 where certain
    tint = 1 - (1 - (colours[:, cls] * 0.45 + 0.55)) * strength[None]
    region = F.interpolate(tint[None], size=(size, size), mode="nearest")[0]
    sheet, draw, left, top = _plot_frame(size, lo, hi, title, "x1", "x2")
    sheet.paste(to_pil(region), (left, top))
    px = ((points[:, 0] - lo[0]) / (hi[0] - lo[0]) * size).tolist()
    py = ((hi[1] - points[:, 1]) / (hi[1] - lo[1]) * size).tolist()
    for x, y, c in zip(px, py, labels.tolist()):
        draw.ellipse([left + x - 3, top + y - 3, left + x + 3, top + y + 3], fill=PALETTE[c % len(PALETTE)],
                     outline="white")
    fnt = font()
    for c, name in enumerate(class_names[:len(PALETTE)]):
        y = top + c * LINE
        draw.ellipse([left + size + 2 * PAD, y + 4, left + size + 2 * PAD + 8, y + 12], fill=PALETTE[c])
        draw.text((left + size + 3 * PAD + 8, y), text_fit(str(name), 120, fnt), fill="black", font=fnt)
    return from_pil(sheet)


def curves_figure(points: Tensor, targets: Tensor, xs: Tensor, curves: dict[str, Tensor], title: str,
                  truth: Optional[Tensor] = None) -> Tensor:
    """1-D regression: the data points and each named fitted curve (and the true function, dashed grey)."""
    size = 360
    ys = torch.cat([targets.flatten(), *[c.flatten() for c in curves.values()]])
    ylo, yhi = float(ys.min()), float(ys.max())
    ylo, yhi = max(ylo, -3.0), min(yhi, 3.0)  # wild high-degree fits are clipped to the data's scale
    pad = 0.1 * (yhi - ylo or 1.0)
    lo, hi = (float(xs.min()), ylo - pad), (float(xs.max()), yhi + pad)
    sheet, draw, left, top = _plot_frame(size, lo, hi, title, "x", "y")

    def to_px(x: Tensor, y: Tensor) -> list[tuple[float, float]]:
        px = (x - lo[0]) / (hi[0] - lo[0]) * size + left
        py = (hi[1] - y.clamp(lo[1], hi[1])) / (hi[1] - lo[1]) * size + top
        return list(zip(px.tolist(), py.tolist()))

    if truth is not None:
        pts = to_px(xs, truth)
        for i in range(0, len(pts) - 1, 2):
            draw.line(pts[i:i + 2], fill=(150, 150, 150), width=1)
    fnt = font()
    for c, (name, ys_c) in enumerate(curves.items()):
        draw.line(to_px(xs, ys_c.flatten()), fill=PALETTE[c % len(PALETTE)], width=2)
        y = top + c * LINE
        draw.line([(left + size + 2 * PAD, y + 8), (left + size + 2 * PAD + 12, y + 8)], fill=PALETTE[c], width=2)
        draw.text((left + size + 3 * PAD + 12, y), text_fit(name, 120, fnt), fill="black", font=fnt)
    for x, y in to_px(points.flatten(), targets.flatten()):
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill="black")
    return from_pil(sheet)


def _marker(draw: ImageDraw.ImageDraw, x: float, y: float, shape: int, colour: tuple[int, int, int]) -> None:
    """A point of a line: a dot, square, diamond or triangle (`shape` tells lines of the same colour apart)."""
    r = 3
    outline = [[(x - r, y - r), (x + r, y + r)], [(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)],
               [(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)]]
    if shape % 4 == 0:
        draw.ellipse([x - r + 1, y - r + 1, x + r - 1, y + r - 1], fill=colour)
    elif shape % 4 == 1:
        draw.rectangle(outline[0], fill=colour)
    else:
        draw.polygon(outline[shape % 4 - 1], fill=colour)


LEGEND_WIDTH = 420  # px at most for a legend label; longer ones end with '..'


def lines_figure(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str,
                 ylabel: str) -> Tensor:
    """One line per named (xs, ys) series, with a legend as wide as its labels (up to LEGEND_WIDTH px), e.g. the
    validation curves of several runs. Colours repeat after six lines, with another marker shape."""
    size = 360
    fnt = font()
    xs_all = [x for xs, _ in series.values() for x in xs]
    ys_all = [y for _, ys in series.values() for y in ys]
    pad = 0.05 * ((max(ys_all) - min(ys_all)) or 1.0)
    lo, hi = (min(xs_all), min(ys_all) - pad), (max(xs_all) if max(xs_all) > min(xs_all) else min(xs_all) + 1,
                                               max(ys_all) + pad)
    width = int(min(max(fnt.getlength(name) for name in series), LEGEND_WIDTH)) + 20
    sheet, draw, left, top = _plot_frame(size, lo, hi, title, xlabel, ylabel, legend=(max(width, 140), len(series)))
    for c, (name, (xs, ys)) in enumerate(series.items()):
        colour, shape = PALETTE[c % len(PALETTE)], c // len(PALETTE)
        pts = [(left + (x - lo[0]) / (hi[0] - lo[0]) * size, top + (hi[1] - y) / (hi[1] - lo[1]) * size)
               for x, y in zip(xs, ys)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            _marker(draw, x, y, shape, colour)
        y = top + c * LINE
        draw.line([(left + size + 2 * PAD, y + 8), (left + size + 2 * PAD + 12, y + 8)], fill=colour, width=2)
        _marker(draw, left + size + 2 * PAD + 6, y + 8, shape, colour)
        draw.text((left + size + 3 * PAD + 12, y), text_fit(name, LEGEND_WIDTH, fnt), fill="black", font=fnt)
    return from_pil(sheet)
