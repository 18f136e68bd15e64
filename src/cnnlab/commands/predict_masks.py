"""cnnlab-predict for segmenters: whole images in (PNG/JPEG files, or multi-page TIFF stacks, any size), one mask
per image out with the same name and size (0/255 for two classes, class indices otherwise; a TIFF stack gives a
TIFF stack); `overlays=true` adds image+mask pictures, `submission=<file.csv>` the roads task's patch CSV."""
from __future__ import annotations

import itertools
import logging
import os
import re
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.functional import pil_to_tensor

from ..data.common import normalise
from ..data.imageio import EXTENSIONS, BadImageFile, as_8bit, load_page, open_image, open_stack
from ..data.patches import patch_labels, patchify, write_submission
from ..errors import ConfigError
from ..features import FeatureSpec, Standardiser, extract
from ..viz.draw import denormalise, overlay, save_png
from .predict_io import check_output_file, check_writable, input_files, tiff_pages

log = logging.getLogger("cnnlab")
Item = tuple[Path, Optional[int]]  # (file, page of a TIFF stack or None)


class SegImageReader:
    """Image files and TIFF pages -> normalised full-size batches (a stack's pages together, other images alone)."""

    def __init__(self, state: dict, cfg: DictConfig) -> None:
        self.state, self.mode = state, "L" if int(state["in_channels"]) == 1 else "RGB"
        self.items: list[Item] = []
        self.bad: list[Path] = []
        self.bad_reason = "could not be read"
        for path in input_files(str(cfg.input), EXTENSIONS):
            n = tiff_pages(path)
            if not n:
                self.bad.append(path)
            self.items += [(path, k if n > 1 else None) for k in range(n)]

    def _load(self, path: Path, page: Optional[int]) -> Tensor:
        if page is None:
            return pil_to_tensor(as_8bit(open_image(path), path).convert(self.mode))
        with open_stack(path) as stack:
            return pil_to_tensor(as_8bit(load_page(stack, page, path), f"page {page} of {path}").convert(self.mode))

    def batches(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(normalised images, indices into `items`) per batch."""
        for path, group in itertools.groupby(range(len(self.items)), key=lambda k: self.items[k][0]):
            group = list(group)  # an image, or the pages of one stack
            for chunk in (group[lo:lo + size] for lo in range(0, len(group), size)):
                try:
                    x = torch.stack([self._load(*self.items[k]) for k in chunk])
                except BadImageFile:
                    self.bad.append(path)
                else:
                    yield normalise(x.float().div_(255), tuple(self.state["mean"]), tuple(self.state["std"])), \
                        torch.tensor(chunk)


class PatchesAsMask(nn.Module):
    """A classifier of patch features (data=roads_patches, mito_patches) as a segmenter: images -> [B,K,H,W] logits."""

    def __init__(self, model: nn.Module, state: dict) -> None:
        super().__init__()
        self.model, self.k = model, int(state["num_classes"])
        self.patch, self.context = int(state["patch"]), int(state["context"])
        self.spec = FeatureSpec(**state["features"])
        self.scale = Standardiser(state["feature_mean"], state["feature_std"])

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        p = self.patch
        gh, gw = h // p, w // p
        logits = torch.zeros(b, self.k, h, w, device=x.device)
        logits[:, 1:] = -1e4  # background where no whole patch is
        if gh and gw:
            features = self.scale(extract(patchify(x[:, :, :gh * p, :gw * p], p, self.context), spec=self.spec))
            scores = self.model(features).float().reshape(b, gh, gw, self.k).permute(0, 3, 1, 2)
            logits[:, :, :gh * p, :gw * p] = scores.repeat_interleave(p, 2).repeat_interleave(p, 3)
        return logits


def patches_as_segmenter(model: nn.Module, state: dict, ckpt_path: str) -> "tuple[nn.Module, dict]":
    """(the patch classifier as a segmenter, the data state a segmenter's reader and writer take)."""
    if "features" not in state:
        raise ConfigError(f"checkpoint {ckpt_path} does not record how its patch features were computed (trained "
                          f"before cnnlab-predict applied patch classifiers): train it again to predict with it")
    c = int(state["in_channels"])
    seg = {**state, "input": "seg_image", "task": "segmentation", "mean": [0.0] * c, "std": [1.0] * c}  # unnormalised
    if state.get("name") != "roads_patches":  # only a roads model writes the roads submission
        seg.pop("patch")
    return PatchesAsMask(model, state).eval(), seg


def image_number(path: Path) -> int:
    """The last number in a file name (satImage_007.png -> 7, test_12.png -> 12), for the submission ids."""
    numbers = re.findall(r"\d+", path.stem)
    if not numbers:
        raise ConfigError(f"{path.name} has no number in its name: the roads submission ids need one (test_N.png)")
    return int(numbers[-1])


class MaskWriter:
    """Masks (and overlays) as each batch comes; TIFF stacks and the submission CSV when all is done."""

    def __init__(self, state: dict, cfg: DictConfig, run_dir: Path) -> None:
        self.state, self.binary = state, int(state.get("num_classes", 2)) == 2
        self.out = Path(str(cfg.output)) if cfg.get("output") else run_dir / "masks"
        self.overlays, self.submission = bool(cfg.get("overlays")), cfg.get("submission")
        if self.submission and not state.get("patch"):
            raise ConfigError("submission= writes the roads task's patch CSV: this checkpoint is not a roads model")
        if cfg.get("output"):
            check_writable(self.out, f"output={cfg.output}")
        if self.submission:
            check_output_file(str(self.submission), f"submission={self.submission}", "submission.csv")
        self.stacks: dict[Path, dict[int, np.ndarray]] = {}
        self.patches: dict[Path, Tensor] = {}
        self.names: dict[Path, Path] = {}
        self.written = 0

    def _name(self, items: list[Item], path: Path) -> Path:
        """Where `path`'s outputs go below the output folder, without suffix (ConfigError if two inputs share one)."""
        # its file name, or where names repeat (`in/a/x.png`, `in/b/x.png`) its place below the common folder (`a/x`)
        if not self.names:
            files = sorted({p for p, _ in items})
            stems = [Path(p.stem) for p in files]
            if len(set(stems)) < len(stems):
                base = Path(os.path.commonpath([str(p.parent.resolve()) for p in files]))
                stems = [p.resolve().relative_to(base).with_suffix("") for p in files]
                log.info(f"inputs in different folders share file names: outputs keep their folders below {base}")
            owner: dict[Path, Path] = {}
            for p, name in zip(files, stems):
                if name in owner:
                    raise ConfigError(f"input={owner[name]} and {p} would both be written as {name}: rename one, "
                                      f"or predict them in two commands")
                owner[name] = p
            self.names = dict(zip(files, stems))
        return self.names[path]

    def targets(self, items: list[Item]) -> list[Path]:
        """The files this writer will write: a mask per image (a stack per TIFF stack), the overlays, the CSV."""
        stacks = {path for path, page in items if page is not None}
        files = [self.out / f"{self._name(items, path)}{'.tif' if path in stacks else '.png'}"
                 for path in dict.fromkeys(p for p, _ in items)]
        if self.overlays:
            files += [self._overlay_file(items, path, page) for path, page in items]
        return files + ([Path(str(self.submission))] if self.submission else [])

    def _overlay_file(self, items: list[Item], path: Path, page: Optional[int]) -> Path:
        return self.out / "overlays" / f"{self._name(items, path)}{f'_page{page:03d}' if page is not None else ''}.png"

    def check(self, items: list[Item]) -> None:
        """Before any mask is written: a submission takes whole images, each with its own number (its ids)."""
        if not self.submission:
            return
        stack = next((path for path, page in items if page is not None), None)
        if stack is not None:
            raise ConfigError(f"submission= writes one row per patch of each image, and {stack} is a multi-page TIFF "
                              f"stack: give the images as PNG/JPEG files (one per test image), or leave submission= "
                              f"out to write the stack's masks")
        owner: dict[int, Path] = {}
        for path in dict.fromkeys(p for p, _ in items):
            number = image_number(path)
            if number in owner:
                raise ConfigError(f"{owner[number]} and {path} both have the number {number}, so their submission "
                                  f"ids would clash: predict them in two commands, or rename one")
            owner[number] = path

    def add(self, items: list[Item], index: Tensor, logits: Tensor, inputs: Optional[Tensor] = None) -> None:
        if self.binary:  # foreground where its probability is above the threshold chosen on validation
            labels = (logits.float().softmax(1)[:, 1] > float(self.state.get("threshold", 0.5))).long()
        else:
            labels = logits.argmax(1)
        for row, k in enumerate(index.tolist()):
            path, page = items[k]
            mask = (labels[row] * 255 if self.binary else labels[row]).to(torch.uint8).numpy()
            name = self._name(items, path)
            if page is None:
                target = self.out / f"{name}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(target)
                self.written += 1
            else:
                self.stacks.setdefault(path, {})[page] = mask
            if self.submission:  # whole patches only (608 = 38 x 16 for the official test images)
                p = int(self.state["patch"])
                h, w = labels.shape[-2] // p * p, labels.shape[-1] // p * p
                self.patches[path] = patch_labels(labels[row:row + 1, :h, :w], p, "mean",
                                                  float(self.state.get("patch_threshold", 0.25)))[0]
            if self.overlays and inputs is not None:
                image = denormalise(inputs[row].float(), self.state["mean"], self.state["std"])
                save_png(overlay(image, labels[row] == 1), self._overlay_file(items, path, page))

    def close(self) -> str:
        for path, pages in self.stacks.items():
            frames = [Image.fromarray(pages[k]) for k in sorted(pages)]
            target = self.out / f"{self.names[path]}.tif"
            target.parent.mkdir(parents=True, exist_ok=True)
            frames[0].save(target, save_all=True, append_images=frames[1:],
                           compression="tiff_adobe_deflate")
            self.written += 1
        summary = f"{self.written} mask file(s) in {self.out.resolve()}"
        if self.submission:
            paths = sorted(self.patches, key=image_number)
            small = [p.name for p in paths if not self.patches[p].numel()]
            if small:
                log.warning(f"{len(small)} image(s) smaller than a {self.state['patch']}x{self.state['patch']} patch "
                            f"have no rows in the submission: {', '.join(small[:5])}")
            write_submission(str(self.submission), [self.patches[p] for p in paths],
                             [image_number(p) for p in paths], int(self.state["patch"]))
            summary += f"; submission {Path(str(self.submission)).resolve()} ({len(paths)} images)"
        return summary
