"""Non-overlapping patches of images and masks, their labels, and the roads submission CSV. Patch order everywhere
is (image, patch row, patch column), row-major, matching `patch_labels(...).flatten()`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor

from cnnlab.checkpoint import atomic_write
from cnnlab.errors import ConfigError

RULES = ("mean", "majority", "centre")


def _check_grid(h: int, w: int, patch: int) -> tuple[int, int]:
    if patch < 1 or h % patch or w % patch:
        raise ConfigError(f"images of {h}x{w} pixels do not split into {patch}x{patch} patches: "
                          f"set data.patch to a divisor of both (16 for roads and mitochondria)")
    return h // patch, w // patch


def patchify(images: Tensor, patch: int = 16, context: int = 0) -> Tensor:
    """Patches [N*gh*gw, C, p+2c, p+2c] of images [N,C,H,W]: each p x p patch plus `context` pixels around it."""
    n, c, h, w = images.shape
    gh, gw = _check_grid(h, w, patch)
    if context > 0:  # edge pixels repeated past the border (the output is then float)
        images = F.pad(images.float(), (context,) * 4, mode="replicate")
    k = patch + 2 * context
    windows = images.unfold(2, k, patch).unfold(3, k, patch)  # [N,C,gh,gw,k,k]
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(n * gh * gw, c, k, k)


def patch_labels(masks: Tensor, patch: int = 16, rule: str = "mean", threshold: float = 0.25) -> Tensor:
    """Patch labels long [N,gh,gw] from masks [N,H,W] in {0,1}: mean > threshold, majority, or the centre pixel."""
    if rule not in RULES:
        raise ConfigError(f"unknown patch label rule {rule!r}: set data.rule to one of {list(RULES)}")
    n, h, w = masks.shape
    gh, gw = _check_grid(h, w, patch)
    cells = masks.reshape(n, gh, patch, gw, patch)
    if rule == "centre":  # for even p, the pixel just below/right of the centre
        return cells[:, :, patch // 2, :, patch // 2].long()
    frac = cells.float().mean(dim=(2, 4))
    return (frac > (threshold if rule == "mean" else 0.5)).long()


def write_submission(path: str | Path, predictions: "Tensor | Sequence[Tensor]", image_ids: Sequence[int],
                     patch: int = 16) -> Path:
    """Write the roads submission CSV of patch predictions [N,gh,gw] (or a [gh,gw] grid per image) atomically."""
    if len(predictions) != len(image_ids) or any(g.ndim != 2 for g in predictions):
        raise ValueError(f"need one [gh,gw] grid of patch predictions for each of {len(image_ids)} images")
    # rows `<img>_<x>_<y>,<label>` (x, y: the patch's top-left pixel), column by column, as mask_to_submission.py
    rows = ["id,prediction"]
    for img, grid in zip(image_ids, (g.long().cpu().tolist() for g in predictions)):
        for col in range(len(grid[0]) if grid else 0):  # an image smaller than a patch has none
            for row in range(len(grid)):
                rows.append(f"{int(img):03d}_{col * patch}_{row * patch},{grid[row][col]}")
    return atomic_write(path, lambda f: f.write(("\n".join(rows) + "\n").encode()))
