"""Road segmentation from aerial images (ETH CIL / EPFL ML course): 400x400 RGB images with anti-aliased masks.
The official test images have no masks, so the test split is held-out training images. The task is scored per 16x16
patch (road when its mean foreground > 0.25, data/patches.py), F1 over patches."""
from __future__ import annotations

import logging
from typing import Optional

from cnnlab.data.common import DataBundle
from cnnlab.data.options import check_count, check_fraction, check_mask_threshold
from cnnlab.data.segaugment import SegAugment
from cnnlab.data.segbundle import SPLITS, class_list, seg_bundle
from cnnlab.data.segmentation import MASK_THRESHOLD, read_roads
from cnnlab.data.splits import image_split

log = logging.getLogger(__name__)
ROAD_CLASSES = ["background", "road"]
PATCH_SIZE, PATCH_THRESHOLD = 16, 0.25  # the task's scoring rule


def check_road_options(max_images: Optional[int], val_fraction: float, test_fraction: float) -> None:
    """The counts and fractions of a roads data config (also of data=roads_patches), before any file is read."""
    check_count("max_images", max_images, minimum=3, nullable=True, meaning="all images")  # train, val, test
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)


def build_roads(root: str, val_fraction: float = 0.2, test_fraction: float = 0.1, split_seed: int = 0,
                max_images: Optional[int] = None, mask_threshold: Optional[int] = MASK_THRESHOLD,
                num_classes: int = 2, class_names: Optional[list[str]] = None,
                augment: Optional[SegAugment] = None, state: Optional[dict] = None,
                only: Optional[str] = None) -> DataBundle:
    """Road images and masks split by image (seeded), uint8; `only` (with a checkpoint's `state`): that split alone."""
    classes = class_list(class_names, num_classes, ROAD_CLASSES)  # a bad class count fails before the files are read
    check_road_options(max_images, val_fraction, test_fraction)
    check_mask_threshold(mask_threshold)
    listed = (state or {}).get("files", {}).get(only) if only else None
    if listed:
        images, masks, names = read_roads(root, None, mask_threshold, num_classes, only_names=listed,
                                          listed_as=f"the checkpoint's {only} split")
        log.info(f"roads: only the {only} split is read ({len(names)} images named in the checkpoint)")
        parts = {s: (images, masks) for s in SPLITS}  # the one split read stands in for the others
        files, augment = state["files"], None
    else:
        images, masks, names = read_roads(root, max_images, mask_threshold, num_classes)
        index = dict(zip(SPLITS, image_split(len(names), val_fraction, test_fraction, split_seed)))
        parts = {s: (images[i], masks[i]) for s, i in index.items()}
        files = {s: [names[i] for i in idx.tolist()] for s, idx in index.items()}
    return seg_bundle(parts, classes, "roads", augment, mask_threshold, saved=state, layout="roads_png",
                      patch=PATCH_SIZE, patch_threshold=PATCH_THRESHOLD, files=files)
