"""How an image file becomes a model input the way the training data's images did, from plain data alone.

A builder of image data records its geometry in the bundle's `state` (`image_state`); `load_image` applies it to
any file: the training data's channel count (RGB <-> greyscale converted), then one of
- `pad`: resized to the raw size the data came in (e.g. MNIST's 28x28) and zero-padded (to 32x32),
- `resize`: stretched to the input size (data that were resized that way, e.g. digits' 8x8 -> 32x32),
- `shorter_side` + centre crop: photographs (CIFAR-10-like and image-folder data).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import ConfigError
from .common import normalise

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
BAD_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def image_state(channels: int, size: Sequence[int], pad: int = 0, resize: bool = False,
                shorter_side: Optional[int] = None) -> dict:
    """The plain-data description of an image input (stored in checkpoints; read by `load_image`)."""
    if channels not in (1, 3):
        raise ConfigError(f"images with {channels} channels are not supported: use 1 (grey) or 3 (RGB)")
    return {"input": "image", "channels": int(channels), "size": [int(size[0]), int(size[1])], "pad": int(pad),
            "resize": bool(resize), "shorter_side": None if shorter_side is None else int(shorter_side)}


def _fit(img: Image.Image, state: dict) -> Image.Image:
    h, w = state["size"]
    if state.get("shorter_side"):
        s = state["shorter_side"]
        scale = s / min(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        return img.crop((left, top, left + w, top + h))
    raw = (w - 2 * state.get("pad", 0), h - 2 * state.get("pad", 0))
    return img if img.size == raw else img.resize(raw, Image.BILINEAR)


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # PIL modes of 16/32-bit greyscale pages


def as_8bit(im: Image.Image, what: "str | Path", mask: bool = False) -> Image.Image:
    """`im` with 8-bit pixels, ready for convert("L"/"RGB") (which would clip 16-bit values at 255): 16-bit
    greyscale (microscopes, many TIFF stacks) is scaled from 0..65535 to 0..255; a mask whose values fit in
    0..255 (class indices, 0/255) keeps them. Floating-point or out-of-range pixels: ConfigError naming `what`."""
    if im.mode not in WIDE_MODES:
        return im
    a = np.asarray(im)
    if a.dtype.kind == "f" or (a.size and (a.min() < 0 or a.max() > 65535)):
        raise ConfigError(f"{what} has {'floating-point' if a.dtype.kind == 'f' else '32-bit'} pixels (PIL mode "
                          f"{im.mode}): save it with 8- or 16-bit integer pixels")
    if mask and (not a.size or a.max() <= 255):
        return Image.fromarray(a.astype(np.uint8))
    return Image.fromarray(((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))


def load_image(path: "str | Path", state: dict) -> Tensor:
    """uint8 [C,H,W] of the file at `path`, shaped as the training images were; raises one of BAD_IMAGE."""
    with Image.open(path) as im:
        img = as_8bit(im, path).convert("L" if state["channels"] == 1 else "RGB")
    arr = np.asarray(_fit(img, state), dtype=np.uint8)
    x = torch.from_numpy(arr.copy())
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    pad = state.get("pad", 0)
    return F.pad(x, (pad, pad, pad, pad)) if pad else x


def prepare_images(mean: Sequence[float], std: Sequence[float]):
    """`prepare` for uint8 image batches: float32 in [0,1], normalised per channel; labels as int64."""
    mean, std = tuple(mean), tuple(std)

    def prepare(x: Tensor, y: Tensor) -> "tuple[Tensor, Tensor]":
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return normalise(x, mean, std), y.long()

    return prepare
