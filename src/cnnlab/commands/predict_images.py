"""cnnlab-predict for image classifiers: image files in (read as the training images were; for a `data=*_features`
checkpoint turned into its features), a CSV out."""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Iterator, Optional

import torch
from omegaconf import DictConfig
from torch import Tensor

from ..data.common import unnormalise
from ..data.imageio import EXTENSIONS, BadImageFile, load_image, prepare_images
from ..features import FeatureSpec, Standardiser, extract
from .predict_io import FileWriter, input_files, tiff_pages

log = logging.getLogger("cnnlab")


class ImageReader:
    """Image files -> normalised batches, shaped as the training images were; unreadable files are counted."""

    def __init__(self, state: dict, cfg: DictConfig) -> None:
        self.state, self.prepare = state, prepare_images(state["mean"], state["std"])
        self.items = input_files(str(cfg.input), EXTENSIONS)
        self.bad: list[Path] = []
        self.bad_reason = "could not be read"
        stacks = [p for p in self.items if tiff_pages(p) > 1]
        if stacks:  # one label per file: say so rather than label page 1 of a stack silently
            names = ", ".join(str(p) for p in stacks[:5]) + (" ..." if len(stacks) > 5 else "")
            log.warning(f"{len(stacks)} input(s) are multi-page TIFF stacks, and a classifier labels one image per "
                        f"file: only their first page is labelled ({names}); save the pages as image files to "
                        f"label each")

    def batches(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, indices into `items`) per batch of readable files."""
        for lo in range(0, len(self.items), size):
            xs, idx = [], []
            for i in range(lo, min(lo + size, len(self.items))):
                try:
                    xs.append(load_image(self.items[i], self.state))
                    idx.append(i)
                except BadImageFile:
                    self.bad.append(self.items[i])
            if xs:
                yield self.prepare(torch.stack(xs), torch.tensor(idx))


class FeatureReader(ImageReader):
    """Image files -> the hand-designed features a `data=*_features` checkpoint was trained on."""
    # back to pixel units with build_feature_data's float steps (HOG of a flat patch amplifies any difference)

    def __init__(self, state: dict, cfg: DictConfig) -> None:
        super().__init__(state["image"], cfg)
        self.mean, self.std = tuple(self.state["mean"]), tuple(self.state["std"])
        self.spec = FeatureSpec(**state["features"])
        self.scale = Standardiser(state["feature_mean"], state["feature_std"])

    def batches(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for x, index in super().batches(size):
            yield self.scale(extract(unnormalise(x, self.mean, self.std), spec=self.spec)), index


class ClassCsvWriter(FileWriter):
    """`path,label,probability` (and the runners-up to the top 5 with more than 5 classes), in input order."""

    def __init__(self, state: dict, cfg: DictConfig, run_dir: Path) -> None:
        super().__init__(state, cfg, run_dir, "predictions.csv")
        self.k = 5 if len(self.names) > 5 else 1

    def add(self, items: list, index: Tensor, logits: Tensor, inputs: Optional[Tensor] = None) -> None:
        probs, labels = logits.float().softmax(1).topk(self.k, dim=1)
        for i, p, c in zip(index.tolist(), probs.tolist(), labels.tolist()):
            self.rows[i] = [str(items[i])] + [v for j in range(self.k) for v in (self.names[c[j]], f"{p[j]:.6f}")]

    def close(self) -> str:
        header = ["path", "label", "probability"] + [f"{w}_{j + 1}" for j in range(1, self.k)
                                                     for w in ("label", "probability")]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header] + [self.rows[i] for i in sorted(self.rows)])
        return self.write(buf.getvalue())
