"""Readers for the segmentation data in the layouts users download: CIL/EPFL roads PNGs and EPFL mitochondria TIFFs.

Images come back as uint8 [N,C,H,W] tensors, masks as long [N,H,W] with 1 = foreground (road / mitochondrion).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cnnlab.errors import ConfigError

ROAD_IMAGES = "training/images"
ROAD_MASKS = "training/groundtruth"
ROAD_TEST = "test_set_images"
ROAD_HINT = ("expected training/images/satImage_NNN.png (RGB) and training/groundtruth/satImage_NNN.png (masks), "
             "test images test_set_images/test_N/test_N.png; download the CIL/EPFL road segmentation data there "
             "or set data.root=...")
MITO_HINT = ("expected multi-page TIFFs training.tif, training_groundtruth.tif (and testing.tif, "
             "testing_groundtruth.tif); download the EPFL hippocampus mitochondria stacks there or set data.root=...")
MASK_THRESHOLD = 127  # masks are anti-aliased 8-bit (roads: background 0, road ~237); foreground is > 127


def _open_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _open_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > MASK_THRESHOLD


def _stack(arrays: list[np.ndarray], paths: list[Path], what: str) -> np.ndarray:
    """Stack equally sized arrays, or raise a ConfigError naming the first file whose size differs."""
    for a, p in zip(arrays, paths):
        if a.shape[:2] != arrays[0].shape[:2]:
            raise ConfigError(f"{what} {p} is {a.shape[1]}x{a.shape[0]} but {paths[0].name} is "
                              f"{arrays[0].shape[1]}x{arrays[0].shape[0]}: all {what}s must have one size")
    return np.stack(arrays)


def _require_dir(path: Path, hint: str) -> None:
    if not path.is_dir():
        raise ConfigError(f"folder {path} not found; {hint}")


def read_roads(root: str | Path, max_images: Optional[int] = None) -> tuple[Tensor, Tensor, list[str]]:
    """Road training pairs: (images uint8 [N,3,H,W], masks long [N,H,W] in {0,1}, file names), paired by name."""
    root = Path(root).expanduser()
    img_dir, mask_dir = root / ROAD_IMAGES, root / ROAD_MASKS
    _require_dir(img_dir, ROAD_HINT)
    _require_dir(mask_dir, ROAD_HINT)
    images = {p.name: p for p in img_dir.glob("*.png")}
    masks = {p.name: p for p in mask_dir.glob("*.png")}
    if not images:
        raise ConfigError(f"no PNG images in {img_dir}; {ROAD_HINT}")
    unpaired = sorted(set(images) ^ set(masks))
    if unpaired:
        raise ConfigError(f"{len(unpaired)} road files without a partner in {ROAD_IMAGES} / {ROAD_MASKS} "
                          f"(e.g. {unpaired[:3]}): every image needs a groundtruth PNG of the same name")
    names = sorted(images)[:max_images]
    rgb = _stack([_open_rgb(images[n]) for n in names], [images[n] for n in names], "road image")
    fg = [_open_mask(masks[n]) for n in names]
    for n, m in zip(names, fg):
        if m.shape != rgb.shape[1:3]:
            raise ConfigError(f"road mask {masks[n]} is {m.shape[1]}x{m.shape[0]} but the images are "
                              f"{rgb.shape[2]}x{rgb.shape[1]}: masks must match their images")
    fg = np.stack(fg)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(fg).long(), names


def read_road_test(root: str | Path) -> tuple[Tensor, list[int]]:
    """Road test images (uint8 [N,3,H,W]) from test_set_images/test_N/test_N.png and their numbers N, sorted."""
    test_dir = Path(root).expanduser() / ROAD_TEST
    _require_dir(test_dir, ROAD_HINT)
    found = {}
    for p in test_dir.glob("test_*/test_*.png"):
        m = re.fullmatch(r"test_(\d+)", p.stem)
        if m and p.parent.name == p.stem:
            found[int(m.group(1))] = p
    if not found:
        raise ConfigError(f"no test_N/test_N.png files in {test_dir}; {ROAD_HINT}")
    ids = sorted(found)
    paths = [found[i] for i in ids]
    rgb = _stack([_open_rgb(p) for p in paths], paths, "road test image")
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), ids


def read_tiff_stack(path: str | Path, slices: Optional[Sequence[int]] = None) -> np.ndarray:
    """Pages of a multi-page 8-bit TIFF as uint8 [S,H,W] (all pages, or the given page indices)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path} not found; {MITO_HINT}")
    with Image.open(path) as im:
        n_pages = getattr(im, "n_frames", 1)
        pages = range(n_pages) if slices is None else list(slices)
        out = []
        for i in pages:
            if not 0 <= i < n_pages:
                raise ConfigError(f"{path} has {n_pages} pages, slice {i} requested: fix data.slice_step/slices")
            im.seek(i)
            out.append(np.asarray(im.convert("L")))
    return _stack(out, [path] * len(out), f"page of {path.name}")


def mito_split_exists(root: str | Path, split: str) -> bool:
    """True when `<split>.tif` and `<split>_groundtruth.tif` are both in root."""
    root = Path(root).expanduser()
    return (root / f"{split}.tif").is_file() and (root / f"{split}_groundtruth.tif").is_file()


def read_mito(root: str | Path, split: str = "training",
              slices: Optional[Sequence[int]] = None) -> tuple[Tensor, Tensor]:
    """Mitochondria stack `split` ('training' or 'testing'): (images uint8 [S,1,H,W], masks long [S,H,W] in {0,1})."""
    if split not in ("training", "testing"):
        raise ConfigError(f"unknown mitochondria split {split!r}: use 'training' or 'testing'")
    root = Path(root).expanduser()
    _require_dir(root, MITO_HINT)
    images = read_tiff_stack(root / f"{split}.tif", slices)
    masks = read_tiff_stack(root / f"{split}_groundtruth.tif", slices)
    if images.shape != masks.shape:
        raise ConfigError(f"{split}.tif is {images.shape} but {split}_groundtruth.tif is {masks.shape} "
                          f"(slices, height, width) in {root}: the stacks must match")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(masks > MASK_THRESHOLD).long()


def mito_page_count(path: str | Path) -> int:
    """Number of pages in a multi-page TIFF."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path} not found; {MITO_HINT}")
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)
