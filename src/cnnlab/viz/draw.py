"""Pictures of what a network learned, as float [3,H,W] tensors in [0,1] (TensorBoard `add_image`) or PNGs: every
figure has a title, labelled tiles large enough to read, and a colour bar where colour encodes a value. Drawn with
PIL (ten times faster than matplotlib for these sheets); masks with torchvision's draw_segmentation_masks."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import draw_segmentation_masks, save_image

from ..data.common import unnormalise

MIN_TILE = 96   # pixels: small images (28, 32) are enlarged to at least this, nearest-neighbour
FILTER_TILE = 64  # pixels: each first-layer filter is enlarged to at least this
LINE = 16       # pixels per text line
PAD = 6
TRUTH, PREDICTION = "#0072B2", "#E69F00"  # Okabe-Ito blue and orange (as viz.plots.OKABE_ITO)
FONT = ImageFont.load_default(size=13)  # PIL's bundled scalable font


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


def heat(t: Tensor) -> Tensor:
    """[N,H,W] in [0,1] -> [N,3,H,W] 'hot' colours: black, red, yellow, white."""
    return torch.stack([(3 * t).clamp(0, 1), (3 * t - 1).clamp(0, 1), (3 * t - 2).clamp(0, 1)], 1)


def to_pil(img: Tensor) -> Image.Image:
    """[3,H,W] or [1,H,W] float in [0,1] -> PIL RGB image (rounded to the nearest of 256 levels)."""
    return to_pil_image((rgb(img.detach().float().cpu()).clamp(0, 1) * 255).round().byte())


def from_pil(img: Image.Image) -> Tensor:
    """PIL image -> [3,H,W] float in [0,1]."""
    return pil_to_tensor(img.convert("RGB")).float() / 255


def save_png(img: Tensor, path: "str | Path") -> Path:
    """Write a [3,H,W] image in [0,1] as a PNG (parent folders created; torchvision's save_image); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(img.detach().float().cpu().clamp(0, 1), path, format="PNG")
    return path


def text_fit(text: str, width: float) -> str:
    """`text` shortened with '..' to fit `width` pixels (ASCII: the bundled fonts lack arrows and ellipses)."""
    if FONT.getlength(text) <= width:
        return text
    while text and FONT.getlength(text + "..") > width:
        text = text[:-1]
    return text + ".."


def figure(tiles: Tensor, captions: Sequence[str], ncol: int, title: str, lines: int = 1,
           footer: Optional[Image.Image] = None) -> Tensor:
    """Tiles [N,3,h,w] in [0,1], `ncol` a row, `lines` caption lines under each, a title and an optional footer."""
    n, _, h, w = tiles.shape
    ncol = max(1, min(ncol, n))
    cell_w, cell_h = w + PAD, h + lines * LINE + PAD
    title_lines = title.split("\n")
    top = PAD + LINE * len(title_lines) + PAD
    width = max(PAD + ncol * cell_w, int(max(FONT.getlength(t) for t in title_lines)) + 2 * PAD,
                footer.width + 2 * PAD if footer else 0)
    rows_h = math.ceil(n / ncol) * cell_h
    sheet = Image.new("RGB", (width, top + rows_h + (footer.height + PAD if footer else 0) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for k, t in enumerate(title_lines):
        draw.text((PAD, PAD + k * LINE), text_fit(t, width - 2 * PAD), fill="black", font=FONT)
    for i in range(n):
        x, y = PAD + (i % ncol) * cell_w, top + (i // ncol) * cell_h
        sheet.paste(to_pil(tiles[i]), (x, y))
        for k, line in enumerate(str(captions[i]).split("\n")[:lines]):
            draw.text((x, y + h + 1 + k * LINE), text_fit(line, w), fill="black", font=FONT)
    if footer is not None:
        sheet.paste(footer, (PAD, top + rows_h))
    return from_pil(sheet)


def colour_bar(colours: Tensor, low: str, mid: str, high: str, label: str, width: int = 240) -> Image.Image:
    """A horizontal bar of `colours` [3,K] (left to right) with three value labels and a caption."""
    bar = F.interpolate(colours[None, :, None, :].float(), size=(12, width), mode="bilinear", align_corners=True)[0]
    img = Image.new("RGB", (width + int(FONT.getlength(label)) + 3 * PAD, 12 + LINE + 2), "white")
    img.paste(to_pil(bar), (0, 0))
    draw = ImageDraw.Draw(img)
    draw.text((0, 13), low, fill="black", font=FONT)
    draw.text((width // 2, 13), mid, fill="black", font=FONT, anchor="ma")
    draw.text((width, 13), high, fill="black", font=FONT, anchor="ra")
    draw.text((width + 2 * PAD, 0), label, fill="black", font=FONT)
    return img


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
    bar = colour_bar(torch.tensor([[0.0, 0.5, 1.0]] * 3), f"-{peak:.2g}", "0", f"+{peak:.2g}", "weight")
    size = f"{weight.shape[-2]}x{weight.shape[-1]}x{weight.shape[1]}"
    title = f"first-layer filters: {n} filters of {size}, one shared scale"
    return figure(tiles, [f"#{i + 1}" for i in range(n)], ncol, title, footer=bar)


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
    sal = enlarge(heat(sal / sal.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)))
    gap = torch.ones(*imgs.shape[:-1], PAD // 2)
    tiles = torch.cat([imgs, gap, sal], -1)  # one tile per pair: image | map
    captions = [f"true {t}\npredicted {p}" + ("" if p == t else " (wrong)") for t, p in zip(true, pred)]
    method = f"SmoothGrad ({smooth} noisy copies)" if smooth else "plain gradients"
    bar = colour_bar(heat(torch.linspace(0, 1, 16)[None])[0].reshape(3, -1), "0", "", "max",
                     "|d class score / d pixel|, per image")
    return figure(tiles, captions, pairs_per_row, f"each image beside the saliency of its true class (Simonyan et "
                  f"al. 2014), {method}", lines=2, footer=bar)


def confusion_panel(cm: Tensor, names: Sequence[str], normalised: bool) -> Image.Image:
    """One confusion matrix (rows: true, columns: predicted), counts or row-normalised, as a PIL image."""
    k = cm.shape[0]
    cell = int(max(18, min(96, 480 // k)))
    rates = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    shade = rates if normalised else cm.float() / cm.max().clamp_min(1)
    labels = [text_fit(str(n), 90) for n in names]
    margin = max(int(FONT.getlength(n)) for n in labels) + PAD + LINE
    img = Image.new("RGB", (margin + k * cell + PAD, margin + k * cell + LINE + PAD), "white")
    draw = ImageDraw.Draw(img)
    for i in range(k):
        for j in range(k):
            v = float(shade[i, j])
            x0, y0 = margin + j * cell, margin + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(int(255 * (1 - 0.9 * v)),
                           int(255 * (1 - 0.6 * v)), 255), outline=(200, 200, 200))
            text = f"{float(rates[i, j]):.0%}" if normalised else str(int(cm[i, j]))
            if FONT.getlength(text) < cell - 2:
                draw.text((x0 + cell / 2, y0 + cell / 2), text, anchor="mm", font=FONT,
                          fill="white" if v > 0.5 else "black")
    for i, name in enumerate(labels):  # row names left, column names rotated above
        draw.text((margin - 4, margin + i * cell + cell / 2), name, anchor="rm", fill="black", font=FONT)
        tag = Image.new("RGB", (margin - LINE, cell), "white")
        ImageDraw.Draw(tag).text((margin - LINE - 4, cell / 2), name, anchor="rm", fill="black", font=FONT)
        img.paste(tag.rotate(-90, expand=True), (margin + i * cell, LINE))
    draw.text((margin, 0), "predicted:", fill="black", font=FONT)
    return img


def confusion_figure(cm: Tensor, class_names: Sequence[str], title: str = "validation confusion matrix") -> Tensor:
    """Counts beside the row-normalised view (each row sums to 100 %: the recall of that class), rows = true."""
    cm = cm.detach().cpu().long()
    panels = [confusion_panel(cm, class_names, normalised=False)]
    if cm.shape[0] <= 30:  # more classes: the counts alone
        panels.append(confusion_panel(cm, class_names, normalised=True))
    head = [f"{title}: rows = true class, columns = predicted ({int(cm.sum())} samples)",
            "left: counts; right: row-normalised (the diagonal is each class's recall)" if len(panels) == 2
            else "counts"]
    width = max(sum(p.width for p in panels) + PAD * (len(panels) + 1), max(int(FONT.getlength(h)) for h in head) + 12)
    sheet = Image.new("RGB", (width, 2 * LINE + 2 * PAD + max(p.height for p in panels)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, h in enumerate(head):
        draw.text((PAD, PAD + k * LINE), h, fill="black", font=FONT)
    for k, p in enumerate(panels):
        sheet.paste(p, (PAD + k * (panels[0].width + PAD), 2 * LINE + PAD))
    return from_pil(sheet)


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
