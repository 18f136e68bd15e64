"""Pictures of what a network learned, as float [3,H,W] tensors in [0,1] (TensorBoard `add_image`) or PNGs: every
figure has a title, labelled tiles large enough to read, and a colour bar where colour encodes a value. Tiles are
laid out and masks drawn by torchvision (make_grid, draw_segmentation_masks), text and colour bars by matplotlib."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import IdentityTransform
from torch import Tensor, nn
from torchvision.utils import draw_segmentation_masks, make_grid, save_image

from ..data.common import unnormalise
from .plots import DPI, as_image

MIN_TILE = 96   # pixels: small images (28, 32) are enlarged to at least this, nearest-neighbour
FILTER_TILE = 64  # pixels: each first-layer filter is enlarged to at least this
FONT = 13 * 72 / DPI  # points: text 13 pixels high
LINE = 16       # pixels per text line
PAD = 6
BAR = 72        # pixels below the tiles for a colour bar, its ticks and its caption
TRUTH, PREDICTION = "#0072B2", "#E69F00"  # Okabe-Ito blue and orange (as viz.plots.OKABE_ITO)


def denormalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo per-channel (x - mean) / std on [C,H,W] or [N,C,H,W] and clamp to [0,1]; no stats: min-max."""
    if not mean or not std:
        return (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return unnormalise(x, tuple(mean), tuple(std)).clamp(0, 1)


def rgb(x: Tensor) -> Tensor:
    """[...,C,H,W] with C = 1 or 3 as three channels."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x[..., :3, :, :]


def enlarge(x: Tensor, min_size: int = MIN_TILE) -> Tensor:
    """[N,C,H,W] enlarged by an integer factor (nearest) so that the shorter side is at least `min_size`."""
    factor = max(1, math.ceil(min_size / min(x.shape[-2:])))
    return F.interpolate(x.float(), scale_factor=factor, mode="nearest") if factor > 1 else x.float()


def save_png(img: Tensor, path: "str | Path") -> Path:
    """Write a [3,H,W] image in [0,1] as a PNG (parent folders created; torchvision's save_image); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(img.detach().float().cpu().clamp(0, 1), path, format="PNG")
    return path


@matplotlib.rc_context({"font.size": FONT})
def figure(tiles: Tensor, captions: Sequence[str], ncol: int, title: str, lines: int = 1,
           bar: Optional[tuple[str, dict[float, str], str]] = None) -> Tensor:
    """Tiles [N,3,h,w] in [0,1], pixel for pixel, `ncol` a row, each captioned, a title and an optional colour bar."""
    # `lines`: caption lines under each tile; `bar`: (colour map, {value: tick label}, caption)
    n, _, h, w = tiles.shape
    ncol = max(1, min(ncol, n))
    cells = make_grid(F.pad(rgb(tiles), (0, 0, 0, lines * LINE), value=1.0), nrow=ncol, padding=PAD, pad_value=1.0)
    top, bottom = LINE * (title.count("\n") + 1) + PAD, BAR if bar else 0
    height = top + cells.shape[1] + bottom
    fig = Figure(figsize=(cells.shape[2] / DPI, height / DPI), dpi=DPI)
    pixels = {"transform": IdentityTransform(), "va": "top"}  # positions in pixels from the bottom left
    head = fig.text(PAD, height - PAD, title, **pixels)
    renderer = FigureCanvasAgg(fig).get_renderer()
    title_width = head.get_window_extent(renderer).width + 2 * PAD
    width = math.ceil(max(cells.shape[2], title_width, 240 + 4 * LINE if bar else 0))
    fig.set_figwidth(width / DPI)
    fig.figimage(cells.permute(1, 2, 0).numpy(), xo=0, yo=bottom, origin="upper")
    for i, caption in enumerate(captions):
        x, y = PAD + (i % ncol) * (w + PAD), height - top - PAD - (i // ncol) * (h + lines * LINE + PAD) - h
        label = fig.text(x, y - 1, str(caption), **pixels)
        wide = label.get_window_extent(renderer).width
        if wide > w:  # a long caption is drawn smaller, never cut
            label.set_fontsize(FONT * w / wide)
    if bar is not None:
        cmap, ticks, label = bar
        axes = fig.add_axes((2 * LINE / width, (bottom - PAD - 12) / height, 240 / width, 12 / height))
        scale = fig.colorbar(ScalarMappable(Normalize(min(ticks), max(ticks)), cmap), cax=axes,
                             orientation="horizontal", label=label)
        scale.set_ticks(list(ticks), labels=list(ticks.values()))
    return as_image(fig)


def first_conv(model: nn.Module) -> Optional[nn.Conv2d]:
    """The first nn.Conv2d in `model.modules()`, or None for a model without one."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def filter_tiles(weight: Tensor) -> tuple[Tensor, float]:
    """Conv filters [O,I,kh,kw] as [O,3,kh',kw'] tiles on one shared scale, and the largest |weight|."""
    # mid-grey = 0, black/white = -+ the largest |weight|; RGB for 3 input channels, else the mean over them
    w = weight.detach().float().cpu()
    w = w if w.shape[1] == 3 else w.mean(1, keepdim=True)
    peak = float(w.abs().max().clamp_min(1e-12))
    return enlarge(rgb(0.5 + 0.5 * w / peak), FILTER_TILE), peak


def filter_figure(weight: Tensor) -> Tensor:
    """Each filter enlarged, numbered, on a shared colour scale with its colour bar."""
    tiles, peak = filter_tiles(weight)
    n = len(tiles)
    ncol = n if n <= 8 else math.ceil(math.sqrt(n))
    bar = ("gray", {-peak: f"-{peak:.2g}", 0.0: "0", peak: f"+{peak:.2g}"}, "weight")
    size = f"{weight.shape[-2]}x{weight.shape[-1]}x{weight.shape[1]}"
    title = f"first-layer filters: {n} filters of {size}, one shared scale"
    return figure(tiles, [f"#{i + 1}" for i in range(n)], ncol, title, bar=bar)


def saliency(model: nn.Module, x: Tensor, target: Optional[Tensor] = None, smooth: int = 0, seed: int = 0) -> Tensor:
    """[N,H,W] max over channels of |d score_c / d x|, c = target or the predicted class (eval mode)."""
    # Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", ICLR workshop 2014. SmoothGrad (Smilkov
    # et al. 2017): with `smooth` > 0 the mean over that many copies of x plus Gaussian noise of 0.15 times x's
    # range, from a generator of its own: the same noise every epoch, and a resumed run continues exactly.
    was_training = model.training
    model.eval()
    try:
        x = x.detach()
        sigma = 0.15 * float(x.max() - x.min())
        gen = torch.Generator(device=x.device).manual_seed(seed)
        copies = [x] if smooth <= 0 else [x + sigma * torch.randn(x.shape, generator=gen, device=x.device,
                                                                   dtype=x.dtype) for _ in range(smooth)]
        total = torch.zeros_like(x)
        with torch.enable_grad():
            for xi in copies:
                xi = xi.clone().requires_grad_(True)
                logits = model(xi)
                cls = logits.argmax(1) if target is None else target.to(logits.device).long()
                (grad,) = torch.autograd.grad(logits.gather(1, cls.view(-1, 1)).sum(), xi)  # params' .grad untouched
                total += grad.abs()
    finally:
        model.train(was_training)
    return (total / len(copies)).amax(1)


def saliency_figure(images: Tensor, maps: Tensor, true: Sequence[str], pred: Sequence[str],
                    mean: Sequence[float], std: Sequence[float], smooth: int = 0, pairs_per_row: int = 4) -> Tensor:
    """Each image beside its saliency heat map (per image 0..max), captioned with the true and predicted label."""
    imgs = enlarge(rgb(denormalise(images.detach().float().cpu(), mean, std)))
    sal = maps.detach().float().cpu()
    sal = matplotlib.colormaps["hot"]((sal / sal.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)).numpy())
    sal = enlarge(torch.from_numpy(sal[..., :3]).permute(0, 3, 1, 2))  # black, red, yellow, white
    gap = torch.ones(*imgs.shape[:-1], PAD // 2)
    tiles = torch.cat([imgs, gap, sal], -1)  # one tile per pair: image | map
    captions = [f"true {t}\npredicted {p}" + ("" if p == t else " (wrong)") for t, p in zip(true, pred)]
    method = f"SmoothGrad ({smooth} noisy copies)" if smooth else "plain gradients"
    return figure(tiles, captions, pairs_per_row, f"each image beside the saliency of its true class (Simonyan et "
                  f"al. 2014), {method}", lines=2, bar=("hot", {0.0: "0", 1.0: "max"},
                                                        "|d class score / d pixel|, per image"))


@matplotlib.rc_context({"font.size": FONT})
def confusion_figure(cm: Tensor, class_names: Sequence[str], title: str = "validation confusion matrix") -> Tensor:
    """Counts beside the row-normalised view (each row sums to 100 %: the recall of that class), rows = true."""
    cm = cm.detach().cpu().long()
    k = cm.shape[0]
    rates = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    views = [("counts", cm.float() / cm.max().clamp_min(1), [[str(v) for v in row] for row in cm.tolist()])]
    if k <= 30:  # more classes: the counts alone, without numbers (too small to read)
        views.append(("row-normalised", rates, [[f"{v:.0%}" for v in row] for row in rates.tolist()]))
    cell = max(18, min(96, 480 // k))  # pixels
    size = min(FONT, 0.4 * cell * 72 / DPI)
    side = (k * cell + 160) / DPI  # inches: the cells and the class names
    fig = Figure(figsize=(side * len(views), side + 0.6), dpi=DPI, layout="constrained")
    fig.suptitle(f"{title}: rows = true class, columns = predicted ({int(cm.sum())} samples)" +
                 ("\nleft: counts; right: row-normalised (the diagonal is each class's recall)" if k <= 30 else ""))
    names = [str(n) for n in class_names]
    for ax, (name, shade, texts) in zip(fig.subplots(1, len(views), squeeze=False)[0], views):
        ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
        ax.set(title=name, xlabel="predicted", ylabel="true")
        ax.set_xticks(range(k), names, rotation=90, fontsize=size)
        ax.set_yticks(range(k), names, fontsize=size)
        for i in range(k if k <= 30 else 0):
            for j in range(k):
                ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=size,
                        color="white" if shade[i, j] > 0.5 else "black")
    return as_image(fig)


def mistakes_figure(images: Tensor, targets: Tensor, preds: Tensor, confidences: Tensor,
                    class_names: Sequence[str], mean: Sequence[float], std: Sequence[float], total: int,
                    k: int = 16, split: str = "validation") -> Tensor:
    """The k most confidently wrong images (at least one), captioned with the true class, prediction and probability."""
    wrong = torch.nonzero(preds.cpu() != targets.cpu()).flatten()
    worst = wrong[confidences.cpu()[wrong].argsort(descending=True)[:k]]
    tiles = enlarge(rgb(denormalise(images.detach().float().cpu()[worst], mean, std)), 112)
    names = [str(n) for n in class_names]
    captions = [f"true {names[int(targets[i])]}\npredicted {names[int(preds[i])]} {float(confidences[i]):.0%}"
                for i in worst.tolist()]
    return figure(tiles, captions, max(2, math.ceil(math.sqrt(len(tiles)))),
                  f"the {len(tiles)} most confident mistakes (of {total} {split} images)", lines=2)


def overlay(image: Tensor, mask: Tensor, colour: str = PREDICTION, outline: Optional[Tensor] = None) -> Tensor:
    """[3,H,W] image in [0,1] with `mask` tinted in `colour` and, optionally, another mask's outline in TRUTH's blue."""
    img = (rgb(image.detach().float().cpu()).clamp(0, 1) * 255).round().byte()
    out = draw_segmentation_masks(img, mask.detach().cpu().bool()[None], alpha=0.45, colors=colour)
    if outline is not None:
        true = outline.detach().cpu().float()[None, None]
        edge = (true - (-F.max_pool2d(-true, 3, stride=1, padding=1)))[0, 0] > 0
        out = draw_segmentation_masks(out, edge[None], alpha=1.0, colors=TRUTH)
    return out.float() / 255


def segmentation_figure(examples: Sequence, mean: Sequence[float], std: Sequence[float],
                        split: str = "validation") -> Tensor:
    """Rows of image | ground truth (blue) | prediction (orange, truth outlined in blue), with the image's IoU."""
    tiles, captions = [], []
    for x, y, pred in examples:
        img = rgb(denormalise(x.float(), mean, std))
        truth, guess = y == 1, pred == 1
        inter, union = float((truth & guess).sum()), float((truth | guess).sum())
        tiles += [img, overlay(img, truth, TRUTH), overlay(img, guess, PREDICTION, outline=truth)]
        captions += ["image", "ground truth", f"prediction, IoU {inter / union:.2f}" if union else "prediction"]
    side = max(160, min(320, max(t.shape[-1] for t in tiles)))
    tiles = torch.stack([F.interpolate(t[None], size=(side * t.shape[1] // t.shape[2], side), mode="bilinear",
                                       align_corners=False)[0] for t in tiles])
    return figure(tiles, captions, 3, f"{split} images: ground truth (blue) and prediction (orange; truth outlined "
                  "in blue)")
