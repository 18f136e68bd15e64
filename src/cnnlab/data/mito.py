"""Mitochondria in electron microscopy (EPFL hippocampus CA1, Lucchi et al. 2012; labels of Casser et al. 2020):
2-D slices of a 3-D stack, in multi-page TIFFs (training.tif + training_groundtruth.tif, optionally testing*) or
PNG folders (<root>/training/{images,groundtruth}/<name>.png, paired by name); layout auto picks the first present."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from torch import Tensor

from cnnlab.data.common import DataBundle
from cnnlab.data.options import check_count, check_fraction, check_mask_threshold
from cnnlab.data.segaugment import SegAugment
from cnnlab.data.segbundle import SPLITS, class_list, seg_bundle
from cnnlab.data.segmentation import MITO_HINT, mito_page_count, read_mito, read_png_pairs
from cnnlab.data.splits import slice_blocks
from cnnlab.errors import ConfigError

log = logging.getLogger(__name__)
MITO_CLASSES = ["background", "mitochondrion"]
LAYOUTS = ("auto", "tiff", "png")
PNG_HINT = ("expected <root>/training/images/<name>.png and <root>/training/groundtruth/<name>.png (grayscale "
            "slices paired by name); or set data.layout=tiff")


def has_testing(root: Path, kind: str) -> bool:
    """Whether `root` holds a labelled testing split in layout `kind`; half of one is ignored with a warning."""
    if kind == "tiff":
        images, truth, exists = root / "testing.tif", root / "testing_groundtruth.tif", Path.is_file
    else:
        images, truth, exists = root / "testing" / "images", root / "testing" / "groundtruth", Path.is_dir
    present = exists(images), exists(truth)
    if present[0] != present[1]:
        there, missing = (images, truth) if present[0] else (truth, images)
        log.warning(f"{there} ignored: {missing} is missing (a testing split needs both); the test split is the last "
                    f"block of training slices")
    return all(present)


def _read(root: Path, kind: str, split: str, step: int, threshold: Optional[int], k: int) -> "tuple[Tensor, Tensor]":
    """Every `step`-th slice of `split` ('training' or 'testing') in layout `kind`."""
    if kind == "tiff":
        return read_mito(root, split, range(0, mito_page_count(root / f"{split}.tif"), step), threshold, k)
    x, y, _ = read_png_pairs(root / split / "images", root / split / "groundtruth", PNG_HINT, threshold, k, gray=True)
    return x[::step], y[::step]


def check_mito_options(slice_step: int, val_fraction: float, test_fraction: float) -> None:
    """The slice step and fractions of a mitochondria data config (also of data=mito_patches)."""
    check_count("slice_step", slice_step, meaning="")
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction, zero=True, meaning="the last block of training slices; unused "
                   "with a testing stack")


def read_blocks(root: Path, kind: str, step: int, val_fraction: float, test_fraction: float,
                threshold: Optional[int], k: int) -> "dict[str, tuple[Tensor, Tensor]]":
    """Contiguous train/val(/test) blocks of every `step`-th training slice; test: the testing split when there."""
    has_test = has_testing(root, kind)
    # adjacent slices are 5 nm apart and nearly identical: val is a contiguous block after train, never interleaved
    if kind == "tiff":  # each block's pages alone are decoded
        kept = list(range(0, mito_page_count(root / "training.tif"), step))
        blocks = slice_blocks(len(kept), val_fraction, test_fraction, has_test)
        parts = {s: read_mito(root, "training", [kept[i] for i in b], threshold, k) for s, b in blocks.items()}
        testing = f"{root / 'testing.tif'} + testing_groundtruth.tif"
    else:
        x, y = _read(root, kind, "training", step, threshold, k)
        kept = range(len(x))  # indices into x
        parts = {s: (x[b], y[b]) for s, b in slice_blocks(len(kept), val_fraction, test_fraction, has_test).items()}
        testing = f"{root / 'testing'}/images + groundtruth"
    if has_test:
        parts["test"] = _read(root, kind, "testing", step, threshold, k)
        log.info(f"mito test split: {testing} ({len(parts['test'][0])} slices, data.slice_step={step})")
    else:
        log.info(f"mito test split: the last {len(parts['test'][0])} of the {len(kept)} training slices kept (no "
                 f"testing stack; data.test_fraction, data.slice_step={step})")
    return parts


def build_mito(root: str, layout: str = "auto", val_fraction: float = 0.2, test_fraction: float = 0.2,
               slice_step: int = 1, mask_threshold: Optional[int] = None, num_classes: int = 2,
               class_names: Optional[list[str]] = None, augment: Optional[SegAugment] = None,
               state: Optional[dict] = None, only: Optional[str] = None) -> DataBundle:
    """EM slices and masks (class indices; or > `mask_threshold`) in contiguous train/val(/test) blocks, uint8."""
    check_mito_options(slice_step, val_fraction, test_fraction)
    check_mask_threshold(mask_threshold)
    classes = class_list(class_names, num_classes, MITO_CLASSES)
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise ConfigError(f"folder {root_path} not found; {MITO_HINT}; or {PNG_HINT}")
    if layout not in LAYOUTS:
        raise ConfigError(f"data.layout={layout!r} is not known: use one of {', '.join(LAYOUTS)}")
    if state and only == "test":  # the testing split alone, when present: the training files need not be there
        for kind in ("tiff", "png"):
            if layout in ("auto", kind) and has_testing(root_path, kind):
                part = _read(root_path, kind, "testing", slice_step, mask_threshold, num_classes)
                where = root_path / ("testing.tif" if kind == "tiff" else "testing")
                log.info(f"mito: only the test split is read ({where}, {len(part[0])} slices, "
                         f"data.slice_step={slice_step})")
                return seg_bundle({s: part for s in SPLITS}, classes, "mito", None, mask_threshold, saved=state,
                                  layout=f"mito_{kind}")
    if layout != "auto":
        kind = layout
    elif (root_path / "training.tif").is_file():
        kind = "tiff"
    elif (root_path / "training" / "images").is_dir():
        kind = "png"
    else:
        raise ConfigError(f"no mitochondria data in {root_path}: {MITO_HINT}; or {PNG_HINT}")
    parts = read_blocks(root_path, kind, slice_step, val_fraction, test_fraction, mask_threshold, num_classes)
    return seg_bundle(parts, classes, "mito", augment, mask_threshold, saved=state, layout=f"mito_{kind}")
