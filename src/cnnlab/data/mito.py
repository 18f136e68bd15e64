"""Mitochondria in electron microscopy (EPFL hippocampus CA1, Lucchi et al. 2012; labels of Casser et al. 2020):
2-D slices of a 3-D stack as samples.

Layouts (data.layout=auto picks the first present):
  tiff: <root>/training.tif + training_groundtruth.tif, multi-page 8-bit TIFFs (165 slices of 768x1024, masks
        0/255), and optionally testing.tif + testing_groundtruth.tif;
  png:  <root>/training/images/<name>.png + <root>/training/groundtruth/<name>.png, one grayscale slice per file
        paired by name, slices ordered by the numbers in their names (slice_2 before slice_10); optionally
        <root>/testing/images + <root>/testing/groundtruth.
Adjacent slices are 5 nm apart and nearly identical, so validation is a contiguous block of training slices after
the training block (never interleaved); the test split is the testing stack when present (images and ground truth
both: a testing.tif without its testing_groundtruth.tif is ignored with a warning), else the last block. The log says
which test split was used.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from torch import Tensor

from cnnlab.data.common import DataBundle
from cnnlab.data.options import check_count, check_fraction, check_mask_threshold
from cnnlab.data.segaugment import SegAugment
from cnnlab.data.segbundle import class_list, seg_bundle
from cnnlab.data.segmentation import MITO_HINT, mito_page_count, read_mito, read_png_pairs
from cnnlab.data.splits import slice_blocks
from cnnlab.errors import ConfigError

log = logging.getLogger(__name__)
MITO_CLASSES = ["background", "mitochondrion"]
LAYOUTS = ("auto", "tiff", "png")
PNG_HINT = ("expected <root>/training/images/<name>.png and <root>/training/groundtruth/<name>.png (grayscale "
            "slices paired by name); or set data.layout=tiff")


def _layout(root: Path, layout: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"data.layout={layout!r} is not known: use one of {', '.join(LAYOUTS)}")
    if layout != "auto":
        return layout
    if (root / "training.tif").is_file():
        return "tiff"
    if (root / "training" / "images").is_dir():
        return "png"
    raise ConfigError(f"no mitochondria data in {root}: {MITO_HINT}; or {PNG_HINT}")


def has_testing(root: Path, kind: str) -> bool:
    """Whether `root` holds a labelled testing split in layout `kind` (tiff: testing.tif + testing_groundtruth.tif;
    png: testing/images + testing/groundtruth); half of one is ignored with a warning naming the missing half."""
    if kind == "tiff":
        images, truth = root / "testing.tif", root / "testing_groundtruth.tif"
        present = images.is_file(), truth.is_file()
    else:
        images, truth = root / "testing" / "images", root / "testing" / "groundtruth"
        present = images.is_dir(), truth.is_dir()
    if present[0] != present[1]:
        there, missing = (images, truth) if present[0] else (truth, images)
        log.warning(f"{there} ignored: {missing} is missing (a testing split needs both); the test split is the last "
                    f"block of training slices")
    return all(present)


def log_test_split(testing: Optional[str], test_slices: int, kept: int, step: int) -> None:
    """One line saying which slices the test split holds: those of the `testing` stack, or the last block of the
    `kept` training slices."""
    if testing:
        log.info(f"mito test split: {testing} ({test_slices} slices, data.slice_step={step})")
    else:
        log.info(f"mito test split: the last {test_slices} of the {kept} training slices kept (no testing stack; "
                 f"data.test_fraction, data.slice_step={step})")


def _tiff_parts(root: Path, step: int, fractions: "tuple[float, float]", threshold: Optional[int],
                k: int) -> dict[str, "tuple[Tensor, Tensor]"]:
    has_test = has_testing(root, "tiff")
    kept = list(range(0, mito_page_count(root / "training.tif"), step))
    blocks = slice_blocks(len(kept), *fractions, has_test)
    parts = {s: read_mito(root, "training", [kept[i] for i in b], threshold, k) for s, b in blocks.items()}
    if has_test:
        pages = range(0, mito_page_count(root / "testing.tif"), step)
        parts["test"] = read_mito(root, "testing", pages, threshold, k)
    testing = f"{root / 'testing.tif'} + testing_groundtruth.tif" if has_test else None
    log_test_split(testing, len(parts["test"][0]), len(kept), step)
    return parts


def _png_parts(root: Path, step: int, fractions: "tuple[float, float]", threshold: Optional[int],
               k: int) -> dict[str, "tuple[Tensor, Tensor]"]:
    def read(split: str) -> "tuple[Tensor, Tensor]":
        x, y, _ = read_png_pairs(root / split / "images", root / split / "groundtruth", PNG_HINT, threshold, k,
                                 gray=True)
        return x[::step], y[::step]

    has_test = has_testing(root, "png")
    x, y = read("training")
    blocks = slice_blocks(len(x), *fractions, has_test)
    parts = {s: (x[b], y[b]) for s, b in blocks.items()}
    if has_test:
        parts["test"] = read("testing")
    log_test_split(f"{root / 'testing'}/images + groundtruth" if has_test else None, len(parts["test"][0]), len(x),
                   step)
    return parts


def check_mito_options(slice_step: int, val_fraction: float, test_fraction: float) -> None:
    """The slice step and fractions of a mitochondria data config (also of data=mito_patches)."""
    check_count("slice_step", slice_step, meaning="")
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction, zero=True, meaning="the last block of training slices; unused "
                   "with a testing stack")


def _testing_alone(root: Path, layout: str, step: int, threshold: Optional[int],
                   k: int) -> "Optional[tuple[str, tuple[Tensor, Tensor]]]":
    """(layout, the testing split) read without the training files, or None when `root` has no testing pair."""
    if layout not in LAYOUTS:
        raise ConfigError(f"data.layout={layout!r} is not known: use one of {', '.join(LAYOUTS)}")
    for kind in ("tiff", "png"):
        if layout in ("auto", kind) and has_testing(root, kind):
            if kind == "tiff":
                part = read_mito(root, "testing", range(0, mito_page_count(root / "testing.tif"), step), threshold, k)
            else:
                x, y, _ = read_png_pairs(root / "testing" / "images", root / "testing" / "groundtruth", PNG_HINT,
                                         threshold, k, gray=True)
                part = (x[::step], y[::step])
            log.info(f"mito: only the test split is read ({root / ('testing.tif' if kind == 'tiff' else 'testing')}, "
                     f"{len(part[0])} slices, data.slice_step={step})")
            return kind, part
    return None


def build_mito(root: str, layout: str = "auto", val_fraction: float = 0.2, test_fraction: float = 0.2,
               slice_step: int = 1, mask_threshold: Optional[int] = None, num_classes: int = 2,
               class_names: Optional[list[str]] = None, augment: Optional[SegAugment] = None,
               state: Optional[dict] = None, only: Optional[str] = None) -> DataBundle:
    """EM slices and masks in contiguous train/val(/test) blocks; whole slices, uint8 on the device.

    Masks are read as class indices (0/255 = background/mitochondrion) and checked against `num_classes`;
    `mask_threshold=127` thresholds anti-aliased masks instead. `slice_step` keeps every n-th slice. With a
    checkpoint's `state` and `only="test"`, a testing stack (or testing/ folder) is read alone when present, so
    the training files need not be there.
    """
    check_mito_options(slice_step, val_fraction, test_fraction)
    check_mask_threshold(mask_threshold)
    classes = class_list(class_names, num_classes, MITO_CLASSES)
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise ConfigError(f"folder {root_path} not found; {MITO_HINT}; or {PNG_HINT}")
    if state and only == "test":
        testing = _testing_alone(root_path, layout, slice_step, mask_threshold, num_classes)
        if testing is not None:
            kind, part = testing
            return seg_bundle({s: part for s in ("train", "val", "test")}, classes, "mito", None, mask_threshold,
                              saved=state, layout=f"mito_{kind}")
    kind = _layout(root_path, layout)
    read = _tiff_parts if kind == "tiff" else _png_parts
    parts = read(root_path, slice_step, (val_fraction, test_fraction), mask_threshold, num_classes)
    return seg_bundle(parts, classes, "mito", augment, mask_threshold, saved=state, layout=f"mito_{kind}")
