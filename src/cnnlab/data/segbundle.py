"""The DataBundle of a segmentation task: uint8 image/mask splits on the device, `SegPrepare` per batch (so no float
copy of a split exists), and the data state: plain data a checkpoint stores to predict on new raw images."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from cnnlab.data.common import DataBundle, TensorSplit, normalise
from cnnlab.data.segaugment import SegAugment
from cnnlab.errors import ConfigError

SPLITS = ("train", "val", "test")
DECISION_THRESHOLD = 0.5  # foreground probability above which a pixel is foreground, until validation picks one


@dataclass
class SegPrepare:
    """Stored batch -> model batch: uint8 images to (x/255 - mean)/std float32, uint8 masks to int64."""

    mean: "tuple[float, ...]"
    std: "tuple[float, ...]"

    def __call__(self, x: Tensor, y: Tensor) -> "tuple[Tensor, Tensor]":
        return normalise(x.float().div_(255), self.mean, self.std), y.long()


def class_list(class_names: Optional[list[str]], num_classes: int, two: list[str]) -> list[str]:
    """The configured class names, `two` for two classes, else class_0..class_{K-1}; ConfigError on a count mismatch."""
    if class_names:
        if len(class_names) != num_classes:
            raise ConfigError(f"data.class_names has {len(class_names)} names but data.num_classes={num_classes}: "
                              f"give one name per class")
        return list(class_names)
    if num_classes < 2:
        raise ConfigError(f"data.num_classes={num_classes}: a segmentation task needs at least 2 classes")
    return list(two) if num_classes == 2 else [f"class_{k}" for k in range(num_classes)]


def uint8_stats(images: Tensor) -> "tuple[tuple[float, ...], tuple[float, ...]]":
    """Per-channel mean and (unbiased) std of uint8 [N,C,H,W] images in [0,1] units, from 256-bin histograms."""
    # exact, and without a float copy of the images (the EM training stack is ~100 M pixels)
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).double().cpu()
        n = hist.sum()
        mean = (hist * values).sum() / n
        var = (hist * (values - mean) ** 2).sum() / (n - 1).clamp_min(1)
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


def seg_bundle(parts: dict[str, "tuple[Tensor, Tensor]"], class_names: list[str], name: str,
               augment: Optional[SegAugment], mask_threshold: Optional[int], saved: Optional[dict] = None,
               **extra: Any) -> DataBundle:
    """DataBundle of uint8 (images, masks) per split, normalised by training statistics (or a `saved` state's)."""
    for split in SPLITS:
        if len(parts[split][0]) == 0:
            raise ConfigError(f"the {name} {split} split is empty: lower data.val_fraction/test_fraction or add images")
    train_x = parts["train"][0]
    if augment is not None:
        augment.check(*train_x.shape[-2:])
    mean, std = (tuple(saved["mean"]), tuple(saved["std"])) if saved else uint8_stats(train_x)
    std = tuple(max(s, 1e-3) for s in std)  # a constant channel must not divide by zero
    prepare = SegPrepare(mean, std)
    splits = {s: TensorSplit(x.to(torch.uint8), y.to(torch.uint8), prepare) for s, (x, y) in parts.items()}
    channels = int(train_x.shape[1])
    # the data state (plain data): mean, std of [0,1] pixels; mask_threshold: how ground-truth masks were read (None:
    # class indices); threshold: the two-class foreground cut, replaced in training by the one validation chooses
    state = {"task": "segmentation", "input": "seg_image", "class_names": list(class_names), "in_channels": channels,
             "mean": [float(m) for m in mean], "std": [float(s) for s in std], "mask_threshold": mask_threshold,
             "threshold": (saved or {}).get("threshold", DECISION_THRESHOLD), **extra}
    return DataBundle(splits["train"], splits["val"], splits["test"], num_classes=len(class_names),
                      class_names=list(class_names), model_kwargs={"in_channels": channels}, train_augment=augment,
                      task="segmentation", mean=mean, std=std, name=name, state=state)
