"""How an image file becomes a model input the way the training data's images did, from plain data alone.

A builder records its geometry in the bundle's `state` (`image_state`); `load_image` applies it to any file."""
from __future__ import annotations

import struct
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import ConfigError, first_line
from .common import normalise

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
# what PIL raises while it identifies, seeks or decodes a damaged file (a truncated TIFF header: TypeError "Missing
# dimensions", struct.error; a cut PNG: OSError "image file is truncated"); caught around PIL's own calls only
BAD_IMAGE = (OSError, ValueError, SyntaxError, TypeError, EOFError, IndexError, KeyError, struct.error,
             Image.DecompressionBombError)
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
           ".gif": "GIF", ".webp": "WebP", ".ppm": "PPM", ".pgm": "PGM"}
REPLACE = "replace or remove it"


class BadImageFile(ConfigError):
    """An image file a user supplied that PIL cannot identify or decode (damaged, truncated, not an image)."""

    path: Path
    reason: str


@contextmanager
def decoding(path: "str | Path", fix: str = REPLACE, page: Optional[int] = None) -> Iterator[None]:
    """Around PIL's own reading of `path` only: what PIL raises about its bytes becomes a one-line BadImageFile."""
    try:
        with warnings.catch_warnings():  # PIL's "Corrupt EXIF data" lines about a damaged file: the error says it
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
            yield
    except BAD_IMAGE as e:
        said = first_line(e)
        if isinstance(e, UnidentifiedImageError):
            reason = "not an image PIL can identify"
        elif isinstance(e, OSError) and e.errno is not None:
            reason = e.strerror or said  # the file system's words: permission denied, is a directory
        elif "truncated" in said or isinstance(e, Image.DecompressionBombError):
            reason = said  # "image file is truncated"; too many pixels
        else:
            reason = f"damaged or truncated: {said}"  # "decoder error -2", "Missing dimensions", ...
        reason = reason if page is None else f"page {page}: {reason}"
        kind = FORMATS.get(Path(path).suffix.lower())
        # one message as its only argument, so that a DataLoader worker can raise it again in the parent
        error = BadImageFile(f"{path} is not a readable {kind + ' image' if kind else 'image'} ({reason}): {fix}")
        error.path, error.reason = Path(path), reason
        raise error from None


def open_image(path: "str | Path", fix: str = REPLACE) -> Image.Image:
    """The file's (first) image, fully decoded and the file closed; BadImageFile when it cannot be read."""
    with decoding(path, fix), Image.open(path) as im:
        im.load()
    return im


def open_stack(path: "str | Path", fix: str = REPLACE) -> Image.Image:
    """The file opened, its pages not yet decoded (a context manager): read each with `load_page`."""
    with decoding(path, fix):
        return Image.open(path)


def page_count(path: "str | Path", fix: str = REPLACE) -> int:
    """The number of pages (frames) of an image file: 1 for most, the slices of a multi-page TIFF stack."""
    with decoding(path, fix), Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def load_page(im: Image.Image, page: int, path: "str | Path", fix: str = REPLACE) -> Image.Image:
    """`im` (a multi-page file opened from `path`) at `page`, decoded; BadImageFile naming the page when it fails."""
    with decoding(path, fix, page):
        im.seek(page)
        im.load()
    return im


def image_state(channels: int, size: Sequence[int], pad: int = 0, resize: bool = False,
                shorter_side: Optional[int] = None) -> dict:
    """The plain-data description of an image input (stored in checkpoints; read by `load_image`)."""
    if channels not in (1, 3):
        raise ConfigError(f"images with {channels} channels are not supported: use 1 (grey) or 3 (RGB)")
    return {"input": "image", "channels": int(channels), "size": [int(size[0]), int(size[1])], "pad": int(pad),
            "resize": bool(resize), "shorter_side": None if shorter_side is None else int(shorter_side)}


def _fit(img: Image.Image, state: dict) -> Image.Image:
    h, w = state["size"]
    if state.get("shorter_side"):  # photographs: shorter side resized, then a centre crop, as in training
        return TF.center_crop(TF.resize(img, state["shorter_side"]), [h, w])
    pad = state.get("pad", 0)  # pad: the raw size the data came in (MNIST's 28x28), padded later; or stretched (digits)
    return TF.resize(img, [h - 2 * pad, w - 2 * pad])


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # PIL modes of 16/32-bit greyscale pages


def as_8bit(im: Image.Image, what: "str | Path", mask: bool = False) -> Image.Image:
    """`im` with 8-bit pixels: 16-bit greyscale scaled from 0..65535 (convert() would clip it), a 0..255 mask kept."""
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
    """uint8 [C,H,W] of the file at `path`, shaped as the training images were; BadImageFile when unreadable."""
    img = as_8bit(open_image(path), path).convert("L" if state["channels"] == 1 else "RGB")
    return F.pad(TF.pil_to_tensor(_fit(img, state)), (state.get("pad", 0),) * 4)


def prepare_images(mean: Sequence[float], std: Sequence[float]):
    """`prepare` for uint8 image batches: float32 in [0,1], normalised per channel; labels as int64."""
    mean, std = tuple(mean), tuple(std)

    def prepare(x: Tensor, y: Tensor) -> "tuple[Tensor, Tensor]":
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return normalise(x, mean, std), y.long()

    return prepare
