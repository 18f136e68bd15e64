"""Readers for segmentation data in the layouts users download: CIL/EPFL roads PNGs, EPFL mitochondria TIFF stacks,
and folders of PNG image/mask pairs (the roads layout, also accepted for EM slices).

Images come back as uint8 [N,C,H,W] tensors, masks as uint8 [N,H,W] class indices (1 = road / mitochondrion for
two classes): never int64, the EM stack as int64 would be ~1 GB. A mask is read either by thresholding
(anti-aliased 0..255 masks, roads: foreground > 127) or as a label map (values are class indices; 0/255 is read
as 0/1 for two classes), and a label map holding more classes than configured is an error naming the file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cnnlab.data.imageio import REPLACE, as_8bit, decoding, load_page, open_image, open_stack, page_count
from cnnlab.errors import ConfigError

ROAD_IMAGES = "training/images"
ROAD_MASKS = "training/groundtruth"
ROAD_HINT = ("expected training/images/satImage_NNN.png (RGB) and training/groundtruth/satImage_NNN.png (masks), "
             "test images test_set_images/test_N/test_N.png; download the CIL/EPFL road segmentation data there "
             "or set data.root=...")
MITO_HINT = ("expected multi-page TIFFs training.tif, training_groundtruth.tif (and testing.tif, "
             "testing_groundtruth.tif); download the EPFL hippocampus mitochondria stacks there or set data.root=...")
MITO_FIX = "replace it with an intact copy (download the stack again)"
MASK_THRESHOLD = 127  # masks are anti-aliased 8-bit (roads: background 0, road ~237); foreground is > 127


def natural_key(name: str) -> list:
    """Sort key that orders slice_2 before slice_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _open_rgb(path: Path, fix: str = REPLACE) -> np.ndarray:
    return np.asarray(as_8bit(open_image(path, fix), path).convert("RGB"))


def _open_gray(path: Path, mask: bool = False, fix: str = REPLACE) -> np.ndarray:
    return np.asarray(as_8bit(open_image(path, fix), path, mask).convert("L"))


def to_labels(raw: np.ndarray, threshold: Optional[int], num_classes: int, what: str) -> np.ndarray:
    """uint8 class indices from stored 8-bit masks: `raw > threshold`, or (threshold None) the values themselves."""
    if threshold is not None:
        if num_classes != 2:
            raise ConfigError(f"data.mask_threshold={threshold} makes two-class masks but data.num_classes="
                              f"{num_classes}: set data.mask_threshold=null to read {what} as class indices")
        return (raw > threshold).astype(np.uint8)
    labels = raw.copy()
    if num_classes == 2:
        labels[labels == 255] = 1  # binary masks are commonly stored as 0/255
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    if present[-1] >= num_classes:
        raise ConfigError(f"{what} holds mask values {present.tolist()[:8]} but data.num_classes={num_classes} "
                          f"(values 0..{num_classes - 1}, or 0/255 for two classes): set data.num_classes, or "
                          f"data.mask_threshold=127 for anti-aliased 0..255 masks")
    return labels


def _stack(arrays: list[np.ndarray], paths: list[Path], what: str) -> np.ndarray:
    """Stack equally sized arrays, or raise a ConfigError naming the first file whose size differs."""
    for a, p in zip(arrays, paths):
        if a.shape[:2] != arrays[0].shape[:2]:
            raise ConfigError(f"{what} {p} is {a.shape[1]}x{a.shape[0]} but {paths[0]} is "
                              f"{arrays[0].shape[1]}x{arrays[0].shape[0]}: all {what}s must have one size")
    return np.stack(arrays)


def _require_dir(path: Path, hint: str) -> None:
    if not path.is_dir():
        raise ConfigError(f"folder {path} not found; {hint}")


def _pair_names(img_dir: Path, mask_dir: Path, hint: str) -> list[str]:
    """PNG names present in both folders (natural order); ConfigError naming an image without mask or vice versa."""
    _require_dir(img_dir, hint)
    _require_dir(mask_dir, hint)
    images = {p.name for p in img_dir.glob("*.png")}
    masks = {p.name for p in mask_dir.glob("*.png")}
    if not images:
        raise ConfigError(f"no PNG images in {img_dir}; {hint}")
    for lonely, other, kind in ((images - masks, mask_dir, "mask"), (masks - images, img_dir, "image")):
        if lonely:
            first = sorted(lonely, key=natural_key)[0]
            rest = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
            owner = img_dir if kind == "mask" else mask_dir
            raise ConfigError(f"{owner / first} has no {kind} {other / first}{rest}: every image needs a mask "
                              f"PNG of the same name")
    return sorted(images, key=natural_key)


def _listed_names(img_dir: Path, mask_dir: Path, hint: str, names: Sequence[str], what: str) -> list[str]:
    """`names`, after checking that each has an image and a mask file (ConfigError naming the first missing)."""
    _require_dir(img_dir, hint)
    _require_dir(mask_dir, hint)
    for n in names:
        for folder in (img_dir, mask_dir):
            if not (folder / n).is_file():
                raise ConfigError(f"{folder / n} not found: {what} holds it; set data.root to the folder the "
                                  f"checkpoint was trained on")
    return list(names)


def read_png_pairs(img_dir: Path, mask_dir: Path, hint: str, threshold: Optional[int] = MASK_THRESHOLD,
                   num_classes: int = 2, gray: bool = False, max_images: Optional[int] = None,
                   only_names: Optional[Sequence[str]] = None,
                   listed_as: str = "the list") -> tuple[Tensor, Tensor, list[str]]:
    """Image/mask PNGs paired by name: (uint8 [N,C,H,W] with C = 3, or 1 when `gray`, uint8 [N,H,W], names);
    `only_names`: just these pairs (named by `listed_as` when one is missing), not every pair in the folders."""
    if only_names is not None:
        names = _listed_names(img_dir, mask_dir, hint, only_names, listed_as)
    else:
        names = _pair_names(img_dir, mask_dir, hint)[:max_images]
    paths = [img_dir / n for n in names]
    fix = {p: f"replace it, or remove it and its mask {mask_dir / p.name}" for p in paths}
    pixels = _stack([_open_gray(p, fix=fix[p])[..., None] if gray else _open_rgb(p, fix[p]) for p in paths], paths,
                    "image")
    masks = []
    for n, p in zip(names, paths):
        raw = _open_gray(mask_dir / n, mask=True, fix=f"replace it, or remove it and its image {p}")
        if raw.shape != pixels.shape[1:3]:
            raise ConfigError(f"mask {mask_dir / n} is {raw.shape[1]}x{raw.shape[0]} but its image {p} is "
                              f"{pixels.shape[2]}x{pixels.shape[1]}: masks must match their images")
        masks.append(to_labels(raw, threshold, num_classes, f"mask {mask_dir / n}"))
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.stack(masks)), names


def read_roads(root: str | Path, max_images: Optional[int] = None, threshold: Optional[int] = MASK_THRESHOLD,
               num_classes: int = 2, only_names: Optional[Sequence[str]] = None,
               listed_as: str = "the list") -> tuple[Tensor, Tensor, list[str]]:
    """Road training pairs: (images uint8 [N,3,H,W], masks uint8 [N,H,W] class indices, file names), by name
    (all of them, the first `max_images`, or `only_names`)."""
    root = Path(root).expanduser()
    return read_png_pairs(root / ROAD_IMAGES, root / ROAD_MASKS, ROAD_HINT, threshold, num_classes,
                          max_images=max_images, only_names=only_names, listed_as=listed_as)


def tiff_page_sizes(path: str | Path) -> list[tuple[int, int]]:
    """(width, height) of every page of a multi-page TIFF, read from the page headers without decoding pixels."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path} not found; {MITO_HINT}")
    with decoding(path, MITO_FIX):
        with Image.open(path) as im:
            sizes = []
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                sizes.append(im.size)
    return sizes


def check_tiff_pair(images: Path, masks: Path) -> int:
    """Page count of `images` after checking that `masks` has as many pages, each of the same size."""
    a, b = tiff_page_sizes(images), tiff_page_sizes(masks)
    if len(a) != len(b):
        raise ConfigError(f"{images} has {len(a)} pages but {masks} has {len(b)}: a ground-truth stack needs one "
                          f"mask page per image page")
    for i, (sa, sb) in enumerate(zip(a, b)):
        if sa != sb:
            raise ConfigError(f"page {i} of {images} is {sa[0]}x{sa[1]} but page {i} of {masks} is "
                              f"{sb[0]}x{sb[1]}: image and ground-truth pages must have one size")
    return len(a)


def read_tiff_stack(path: str | Path, slices: Optional[Sequence[int]] = None, mask: bool = False) -> np.ndarray:
    """Pages of a multi-page TIFF as uint8 [S,H,W] (all pages, or the given page indices); 16-bit pages are scaled
    to 8 bits (`mask`: unless their values fit in 0..255), see `as_8bit`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path} not found; {MITO_HINT}")
    n_pages = page_count(path, MITO_FIX)
    pages = range(n_pages) if slices is None else list(slices)
    with open_stack(path, MITO_FIX) as im:
        out = []
        for i in pages:
            if not 0 <= i < n_pages:
                raise ConfigError(f"{path} has {n_pages} pages, slice {i} requested: fix data.slice_step/slices")
            load_page(im, i, path, MITO_FIX)
            out.append(np.asarray(as_8bit(im, f"page {i} of {path}", mask).convert("L")))
    return _stack(out, [path] * len(out), f"page of {path.name}")


def read_mito(root: str | Path, split: str = "training", slices: Optional[Sequence[int]] = None,
              threshold: Optional[int] = MASK_THRESHOLD, num_classes: int = 2) -> tuple[Tensor, Tensor]:
    """Mitochondria stack `split` ('training' or 'testing'): (images uint8 [S,1,H,W], masks uint8 [S,H,W]).

    Page counts and sizes of the image and ground-truth stacks are compared before any pixel is decoded.
    """
    if split not in ("training", "testing"):
        raise ConfigError(f"unknown mitochondria split {split!r}: use 'training' or 'testing'")
    root = Path(root).expanduser()
    _require_dir(root, MITO_HINT)
    check_tiff_pair(root / f"{split}.tif", root / f"{split}_groundtruth.tif")
    images = read_tiff_stack(root / f"{split}.tif", slices)
    raw = read_tiff_stack(root / f"{split}_groundtruth.tif", slices, mask=True)
    masks = to_labels(raw, threshold, num_classes, f"{root / f'{split}_groundtruth.tif'}")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(masks)


def mito_page_count(path: str | Path) -> int:
    """Number of pages in a multi-page TIFF."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path} not found; {MITO_HINT}")
    return page_count(path, MITO_FIX)
