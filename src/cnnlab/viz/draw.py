"""Pictures of what a network learned, as float [3,H,W] tensors in [0,1] (TensorBoard `add_image`) or PNGs.

Saliency follows Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps", ICLR workshop 2014: max over channels of |d score_c / d pixel|.
Text is drawn with PIL's default font, so no plotting library is needed.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from ..data.common import unnormalise

MIN_TILE = 96  # pixels: small images (28, 32) are upscaled to at least this, nearest-neighbour


def denormalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo per-channel (x - mean) / std on [C,H,W] or [N,C,H,W] and clamp to [0,1]; no stats: min-max."""
    if not mean or not std:
        return (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return unnormalise(x, tuple(mean), tuple(std)).clamp(0, 1)


def grid(tiles: Tensor, nrow: int, padding: int = 2, pad_value: float = 0.0) -> Tensor:
    """[N,C,H,W] tiles of one size -> a [3, rows*(H+p)+p, cols*(W+p)+p] mosaic, `nrow` tiles per row."""
    tiles = _rgb(tiles)
    if len(tiles) == 1:
        return tiles[0]  # one tile: no frame (as torchvision's make_grid)
    n, _, h, w = tiles.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    canvas = tiles.new_full((3, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        canvas[:, top:top + h, left:left + w] = tiles[i]
    return canvas


def _rgb(x: Tensor) -> Tensor:
    """[...,C,H,W] with C = 1 or 3 as three channels."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x[..., :3, :, :]


def _upscale(x: Tensor, min_size: int = MIN_TILE) -> Tensor:
    """[N,C,H,W] enlarged by an integer factor (nearest) so the shorter side is at least `min_size`."""
    factor = max(1, math.ceil(min_size / min(x.shape[-2:])))
    return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x


def _heat(t: Tensor) -> Tensor:
    """[N,H,W] in [0,1] -> [N,3,H,W] 'hot' colours: black, red, yellow, white."""
    return torch.stack([(3 * t).clamp(0, 1), (3 * t - 1).clamp(0, 1), (3 * t - 2).clamp(0, 1)], 1)


def to_pil(img: Tensor) -> Image.Image:
    """[3,H,W] or [1,H,W] float in [0,1] -> PIL RGB image."""
    arr = (_rgb(img.detach().float().cpu()).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def from_pil(img: Image.Image) -> Tensor:
    """PIL image -> [3,H,W] float in [0,1]."""
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255


def save_png(img: Tensor, path: "str | Path") -> Path:
    """Write a [3,H,W] image in [0,1] as a PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(img).save(path, format="PNG")
    return path


def first_conv(model: nn.Module) -> Optional[nn.Conv2d]:
    """The first nn.Conv2d in `model.modules()`, or None for a model without one."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def filter_grid(weight: Tensor, scale: Optional[int] = None) -> Tensor:
    """Conv filters [O,I,kh,kw] as a grid, each min-max normalised; RGB when I == 3, else the channel mean."""
    w = weight.detach().float().cpu()
    w = w if w.shape[1] == 3 else w.mean(1, keepdim=True)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = _rgb((w - lo) / (hi - lo).clamp_min(1e-12))
    scale = scale or max(1, math.ceil(40 / max(w.shape[-2:])))  # 5x5 -> 40 px, 11x11 -> 44 px
    w = F.interpolate(w, scale_factor=scale, mode="nearest") if scale > 1 else w
    return grid(w, nrow=math.ceil(math.sqrt(len(w))), padding=4, pad_value=1.0)  # white gaps


def saliency(model: nn.Module, x: Tensor, target: Optional[Tensor] = None) -> Tensor:
    """[N,H,W] max over channels of |d score_c / d x|, c = target or the predicted class (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(x)
            cls = logits.argmax(1) if target is None else target.to(logits.device).long()
            score = logits.gather(1, cls.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, x)  # grads w.r.t. x only: the params' .grad stay untouched
    finally:
        model.train(was_training)
    return grad.abs().amax(1)


def saliency_grid(images: Tensor, saliency_maps: Tensor, mean: Sequence[float], std: Sequence[float],
                  pairs_per_row: int = 4) -> Tensor:
    """Each image beside its saliency heat map (normalised per image), `pairs_per_row` pairs per row."""
    imgs = _rgb(denormalise(images.detach().float().cpu(), mean, std))
    sal = saliency_maps.detach().float().cpu()
    sal = sal / sal.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    pairs = torch.stack([imgs, _heat(sal)], 1).flatten(0, 1)  # image, map, image, map, ...
    return grid(_upscale(pairs), nrow=2 * pairs_per_row, padding=2, pad_value=1.0)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _glyph(font: ImageFont.ImageFont, char: str) -> bytes:
    img = Image.new("L", (24, 24))
    ImageDraw.Draw(img).text((2, 2), char, fill=255, font=font)
    return img.tobytes()


def _text(font: ImageFont.ImageFont, text: str) -> str:
    """`text` with an arrow the font lacks written as '->' (PIL's bundled fonts have no U+2192)."""
    try:
        missing = _glyph(font, "\ue000") == _glyph(font, "\u2192")
    except UnicodeError:  # the latin-1 bitmap fallback font
        missing = True
    return text.replace("\u2192", "->").encode("latin-1", "replace").decode("latin-1") if missing else text


def confusion_image(cm: Tensor, class_names: Sequence[str], cell: int = 0) -> Tensor:
    """Row-normalised confusion matrix (rows = true class) as a blue heat map with counts and class names."""
    cm = cm.detach().cpu().long()
    k = cm.shape[0]
    rates = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    cell = cell or max(8, min(48, 960 // k))
    font, draw_text = _font(), cell >= 24  # too small to read below 24 px per cell
    names = [_text(font, str(n))[:14] for n in class_names] if draw_text else []
    margin = (max((int(font.getlength(n)) for n in names), default=0) + 8) if draw_text else 4
    top = 16
    size = (margin + k * cell + 4, margin + top + k * cell + 4)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for i in range(k):
        for j in range(k):
            v = float(rates[i, j])
            x0, y0 = margin + j * cell, top + margin + i * cell
            shade = (int(255 * (1 - 0.9 * v)), int(255 * (1 - 0.6 * v)), 255)
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=shade, outline=(200, 200, 200))
            if draw_text:
                draw.text((x0 + cell / 2, y0 + cell / 2), str(int(cm[i, j])), anchor="mm", font=font,
                          fill="white" if v > 0.5 else "black")
    if draw_text:
        _label_axes(img, names, margin, top, cell, font)
    draw.text((margin, 2), _text(font, "rows: true, columns: predicted \u2192"), fill="black", font=font)
    return from_pil(img)


def _label_axes(img: Image.Image, names: Sequence[str], margin: int, top: int, cell: int, font) -> None:
    """Class names left of the rows and, rotated, above the columns."""
    draw = ImageDraw.Draw(img)
    for i, name in enumerate(names):
        y = top + margin + i * cell + cell / 2
        draw.text((margin - 4, y), name, anchor="rm", fill="black", font=font)
        label = Image.new("RGB", (margin, cell), "white")
        ImageDraw.Draw(label).text((margin - 4, cell / 2), name, anchor="rm", fill="black", font=font)
        img.paste(label.rotate(-90, expand=True), (margin + i * cell, top))


def _caption(tile: Tensor, true: str, pred: str, p: float, font) -> Tensor:
    """A [3,H,W] tile with a white 'true→pred p=0.97' band underneath (names shortened to fit)."""
    pil = to_pil(tile)
    for n in (12, 10, 8, 6, 4, 2):
        text = _text(font, f"{true[:n]}\u2192{pred[:n]} p={p:.2f}")
        if font.getlength(text) <= pil.width - 4:
            break
    out = Image.new("RGB", (pil.width, pil.height + 14), "white")
    out.paste(pil, (0, 0))
    ImageDraw.Draw(out).text((2, pil.height + 1), text, fill="black", font=font)
    return from_pil(out)


def misclassified_grid(images: Tensor, targets: Tensor, preds: Tensor, confidences: Tensor,
                       class_names: Sequence[str], mean: Sequence[float], std: Sequence[float],
                       k: int = 16) -> Tensor:
    """The k most confidently wrong images, captioned 'true→pred p=0.97'."""
    wrong = torch.nonzero(preds.cpu() != targets.cpu()).flatten()
    font = _font()
    if len(wrong) == 0:
        img = Image.new("RGB", (200, 24), "white")
        ImageDraw.Draw(img).text((4, 6), "no misclassified images", fill="black", font=font)
        return from_pil(img)
    worst = wrong[confidences.cpu()[wrong].argsort(descending=True)[:k]]
    tiles = _upscale(_rgb(denormalise(images.detach().float().cpu()[worst], mean, std)), 128)
    names = [str(n) for n in class_names]
    tiles = [_caption(t, names[int(targets[i])], names[int(preds[i])], float(confidences[i]), font)
             for t, i in zip(tiles, worst.tolist())]
    return grid(torch.stack(tiles), nrow=math.ceil(math.sqrt(len(tiles))), padding=2, pad_value=1.0)


def overlay(image: Tensor, mask_pred: Tensor, mask_true: Optional[Tensor] = None, alpha: float = 0.5) -> Tensor:
    """[3,H,W] image with the predicted mask tinted red and the true mask's outline in green."""
    out = _rgb(image.detach().float().cpu()).clone()
    pred = (mask_pred.detach().cpu().float() > 0.5).float()
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    out = out * (1 - alpha * pred) + red * alpha * pred
    if mask_true is not None:
        true = (mask_true.detach().cpu().float() > 0.5).float()[None, None]
        eroded = -F.max_pool2d(-true, 3, stride=1, padding=1)
        edge = (true - eroded)[0, 0] > 0
        out[:, edge] = torch.tensor([0.0, 1.0, 0.0]).view(3, 1)
    return out.clamp(0, 1)
