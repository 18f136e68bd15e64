#!/usr/bin/env python
"""The lecture's point, as a picture: hand-designed Sobel edge detectors beside the first-layer filters LeNet-5 learned.

    python scripts/sobel_vs_lenet.py --ckpt outputs/lenet5_mnist/<run>/checkpoints/best.pt --out pictures/
    python scripts/sobel_vs_lenet.py --ckpt ... --out ... --tb-dir outputs/lenet5_mnist/<run>/tb   # + TensorBoard

Writes <out>/sobel_vs_lenet.png (everything, labelled), sobel_responses.png (features.sobel_image),
lenet_filters.png (viz.draw.filter_tiles of the checkpoint's first conv) and lenet_responses.png, and with --tb-dir
adds the composite as the TensorBoard image `filters/sobel_vs_lenet`. Images: scikit-learn's digits (offline,
32x32 as LeNet sees them), or MNIST test digits with --mnist-root.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.functional import to_pil_image, to_tensor
from torchvision.utils import make_grid

from cnnlab.viz import draw
from cnnlab.checkpoint import load_checkpoint
from cnnlab.data.common import unnormalise
from cnnlab.features import SOBEL_X, sobel_image

ZOOM = 3  # nearest-neighbour enlargement of the 32x32 response panels
TILE = 96  # pixels per drawn filter mask, as wide as one enlarged response panel


def first_conv_weight(state_dict: dict[str, Tensor]) -> tuple[str, Tensor]:
    """(name, weight [O,I,kh,kw]) of the first 4-D weight in the state dict: the first conv layer."""
    for name, value in state_dict.items():
        if name.endswith("weight") and value.ndim == 4:
            return name, value.float()
    raise SystemExit("error: the checkpoint's model has no conv layer (a 4-D weight): pass a LeNet-5 checkpoint")


def sample_images(n: int, mnist_root: Optional[str]) -> Tensor:
    """n grey digits [n,1,32,32] in [0,1], one per class first: MNIST test images, or scikit-learn's digits."""
    from cnnlab.data.mnist import build_digits, build_mnist

    bundle = build_mnist(mnist_root, val_size=1000) if mnist_root else build_digits(size=32)
    x = unnormalise(bundle.test.batch(slice(None))[0], bundle.mean, bundle.std)  # pixel values again
    firsts = [int((bundle.test.targets == c).nonzero()[0]) for c in range(min(n, 10))]
    return x[firsts].clamp(0, 1)


def response_image(x: Tensor, weight: Tensor, pad: int = 2) -> Tensor:
    """[3,H',W']: per image a row of the image then each filter's response (signed: mid-grey = 0, bias left out)."""
    maps = F.conv2d(x.mean(1, keepdim=True) if weight.shape[1] == 1 else x, weight, padding=weight.shape[-1] // 2)
    peak = maps.flatten(2).abs().amax(2).clamp_min(1e-12)[..., None, None]
    panels = torch.cat([x.mean(1, keepdim=True), 0.5 + 0.5 * maps / peak], 1)  # [n, 1+O, h, w]
    panels = F.pad(panels, (pad,) * 4, value=1.0)
    n, k, h, w = panels.shape
    return panels.permute(0, 2, 1, 3).reshape(1, n * h, k * w).expand(3, -1, -1).contiguous()


def filter_row(weight: Tensor, gap: int = 6) -> Tensor:
    """Filters [O,I,k,k] as one row of enlarged tiles on one shared scale (mid-grey = 0, black/white = -/+ the
    largest |weight|, as draw.filter_tiles draws them)."""
    tiles, _ = draw.filter_tiles(weight)
    tiles = F.interpolate(tiles, size=(TILE, TILE), mode="nearest")
    return make_grid(tiles, nrow=len(tiles), padding=gap, pad_value=1.0)


def _zoom(img: Tensor, factor: int = ZOOM) -> Tensor:
    return F.interpolate(img.unsqueeze(0), scale_factor=factor, mode="nearest")[0]


def compose(panels: list[tuple[str, Tensor]], columns: int = 2, gap: int = 16, title: str = "") -> Tensor:
    """Captioned panels ([3,H,W] in [0,1]) on a white sheet, `columns` per row, as one [3,H,W] image."""
    font = ImageFont.load_default(size=13)
    pils = [to_pil_image(img.clamp(0, 1)) for _, img in panels]
    rows = [list(range(i, min(i + columns, len(pils)))) for i in range(0, len(pils), columns)]
    col_w = [max(pils[i].width for i in range(c, len(pils), columns)) for c in range(columns)]
    line = 14
    heights = [line + max(pils[i].height for i in r) for r in rows]
    top = line + gap if title else gap
    sheet = Image.new("RGB", (sum(col_w) + gap * (columns + 1), top + sum(heights) + gap * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((gap, gap // 2), title, fill="black", font=font)
    y = top
    for r, height in zip(rows, heights):
        x = gap
        for c, i in enumerate(r):
            draw.text((x, y), panels[i][0], fill="black", font=font)
            sheet.paste(pils[i], (x, y + line))
            x += col_w[c] + gap
        y += height + gap
    return to_tensor(sheet)


def build_pictures(weight: Tensor, images: Tensor, source: str) -> dict[str, Tensor]:
    """The four pictures: Sobel masks and responses, learned filters and responses, and the captioned composite."""
    kx = torch.tensor(SOBEL_X)
    sobel_masks = torch.stack([kx, kx.t()]).unsqueeze(1)  # [2,1,3,3]: d/dx, d/dy
    k = weight.shape[-1]
    pictures = {
        "sobel_masks": filter_row(sobel_masks),
        "lenet_filters": filter_row(weight),
        "sobel_responses": _zoom(sobel_image(images, max_images=len(images))),
        "lenet_responses": _zoom(response_image(images, weight)),
    }
    pictures["sobel_vs_lenet"] = compose([
        ("Sobel masks, hand-designed: d/dx, d/dy (3x3)", pictures["sobel_masks"]),
        (f"LeNet-5 C1 filters, learned ({weight.shape[0]} x {k}x{k})", pictures["lenet_filters"]),
        ("Sobel: image | d/dx | d/dy | magnitude", pictures["sobel_responses"]),
        ("LeNet-5 C1: image | one map per learned filter", pictures["lenet_responses"]),
    ], title=f"Hand-designed edge detectors vs learned first-layer filters ({source}). Masks: grey = 0, black/white = "
             "-/+ the largest |weight| of the panel. Responses: grey = 0, dark < 0 < light.")
    return pictures


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a LeNet-5 checkpoint (best.pt or last.pt of a run)")
    parser.add_argument("--out", required=True, help="folder for the PNGs")
    parser.add_argument("--tb-dir", help="TensorBoard log dir to add the composite to (e.g. the run's tb/)")
    parser.add_argument("--mnist-root", help="take MNIST test digits from here (else scikit-learn's digits)")
    parser.add_argument("--num-images", type=int, default=4)
    args = parser.parse_args(argv)
    state = load_checkpoint(args.ckpt)
    name, weight = first_conv_weight(state["model"])
    images = sample_images(args.num_images, args.mnist_root)
    pictures = build_pictures(weight, images, f"{name} of {Path(args.ckpt).name}, epoch {state.get('epoch', '?')}")
    out = Path(args.out)
    for key, img in pictures.items():
        if key != "sobel_masks":
            print(draw.save_png(img, out / f"{key}.png"))
    if args.tb_dir:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(args.tb_dir) as writer:
            writer.add_image("filters/sobel_vs_lenet", pictures["sobel_vs_lenet"], int(state.get("step", 0)))
        print(f"TensorBoard image filters/sobel_vs_lenet in {args.tb_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
