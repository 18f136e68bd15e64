"""Readers for segmentation data: CIL/EPFL roads PNGs, EPFL mitochondria TIFF stacks and folders of PNG image/mask
pairs. Images are uint8 [N,C,H,W]; masks uint8 [N,H,W] class indices (never int64: the EM stack would be ~1 GB),
thresholded (anti-aliased masks) or read as label maps; more classes than configured is an error naming the file."""
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


def _open(path: Path, mode: str, mask: bool = False, fix: str = REPLACE) -> np.ndarray:
    return np.asarray(as_8bit(open_image(path, fix), path, mask).convert(mode))


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
    images = {p.name for p in img_dir.glob("*.png")}
    masks = {p.name for p in mask_dir.glob("*.png")}
    if not images:
        raise ConfigError(f"no PNG images in {img_dir}; {hint}")
    for lonely, owner, other, kind in ((images - masks, img_dir, mask_dir, "mask"),
                                       (masks - images, mask_dir, img_dir, "image")):
        if lonely:
            first = min(lonely, key=natural_key)
            rest = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
            raise ConfigError(f"{owner / first} has no {kind} {other / first}{rest}: every image needs a mask "
                              f"PNG of the same name")
    return sorted(images, key=natural_key)


def read_png_pairs(img_dir: Path, mask_dir: Path, hint: str, threshold: Optional[int] = MASK_THRESHOLD,
                   num_classes: int = 2, gray: bool = False, max_images: Optional[int] = None,
                   only_names: Optional[Sequence[str]] = None,
                   listed_as: str = "the list") -> tuple[Tensor, Tensor, list[str]]:
    """Image/mask PNGs paired by name (all, the first `max_images`, or `only_names`): images, masks, names."""
    _require_dir(img_dir, hint)
    _require_dir(mask_dir, hint)
    if only_names is None:
        names = _pair_names(img_dir, mask_dir, hint)[:max_images]
    else:
        names = list(only_names)
        for n in names:
            for folder in (img_dir, mask_dir):
                if not (folder / n).is_file():
                    raise ConfigError(f"{folder / n} not found: {listed_as} holds it; set data.root to the folder "
                                      f"the checkpoint was trained on")
    paths = [img_dir / n for n in names]
    fix = {p: f"replace it, or remove it and its mask {mask_dir / p.name}" for p in paths}
    pixels = _stack([np.atleast_3d(_open(p, "L" if gray else "RGB", fix=fix[p])) for p in paths], paths, "image")
    masks = []
    for n, p in zip(names, paths):
        raw = _open(mask_dir / n, "L", mask=True, fix=f"replace it, or remove it and its image {p}")
        if raw.shape != pixels.shape[1:3]:
            raise ConfigError(f"mask {mask_dir / n} is {raw.shape[1]}x{raw.shape[0]} but its image {p} is "
                              f"{pixels.shape[2]}x{pixels.shape[1]}: masks must match their images")
        masks.append(to_labels(raw, threshold, num_classes, f"mask {mask_dir / n}"))
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.stack(masks)), names


def read_roads(root: str | Path, max_images: Optional[int] = None, threshold: Optional[int] = MASK_THRESHOLD,
               num_classes: int = 2, only_names: Optional[Sequence[str]] = None,
               listed_as: str = "the list") -> tuple[Tensor, Tensor, list[str]]:
    """Road training pairs: (images uint8 [N,3,H,W], masks uint8 [N,H,W] class indices, file names)."""
    root = Path(root).expanduser()
    return read_png_pairs(root / "training/images", root / "training/groundtruth", ROAD_HINT, threshold,
                          num_classes, max_images=max_images, only_names=only_names, listed_as=listed_as)


def _tiff(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path} not found; {MITO_HINT}")
    return path


def tiff_page_sizes(path: str | Path) -> list[tuple[int, int]]:
    """(width, height) of every page of a multi-page TIFF, read from the page headers without decoding pixels."""
    path = _tiff(path)
    with decoding(path, MITO_FIX), Image.open(path) as im:
        sizes = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            sizes.append(im.size)
    return sizes


def read_tiff_stack(path: str | Path, slices: Optional[Sequence[int]] = None, mask: bool = False) -> np.ndarray:
    """Pages of a multi-page TIFF as uint8 [S,H,W] (all, or those listed), 16-bit scaled to 8 as `as_8bit` does."""
    path = _tiff(path)
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
    """Mitochondria stack `split` ('training' or 'testing'): (images uint8 [S,1,H,W], masks uint8 [S,H,W])."""
    root = Path(root).expanduser()
    stack, truth = root / f"{split}.tif", root / f"{split}_groundtruth.tif"
    a, b = tiff_page_sizes(stack), tiff_page_sizes(truth)  # compared before any pixel is decoded
    if len(a) != len(b):
        raise ConfigError(f"{stack} has {len(a)} pages but {truth} has {len(b)}: a ground-truth stack needs one "
                          f"mask page per image page")
    for i, (sa, sb) in enumerate(zip(a, b)):
        if sa != sb:
            raise ConfigError(f"page {i} of {stack} is {sa[0]}x{sa[1]} but page {i} of {truth} is "
                              f"{sb[0]}x{sb[1]}: image and ground-truth pages must have one size")
    images = read_tiff_stack(stack, slices)
    masks = to_labels(read_tiff_stack(truth, slices, mask=True), threshold, num_classes, str(truth))
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(masks)


def mito_page_count(path: str | Path) -> int:
    """Number of pages in a multi-page TIFF."""
    return page_count(_tiff(path), MITO_FIX)
