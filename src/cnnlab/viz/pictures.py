"""What to draw, and when: first-layer filters, saliency, confusion and mistakes (classification), image | truth |
prediction overlays (segmentation). Everything but saliency comes from the validation pass the loop already made."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from ..data.common import DataBundle, head
from ..tblog import RunLogger
from . import draw


def segmentation_panel(examples: list, mean, std) -> Tensor:
    """Rows of image | ground truth | prediction for each (image, mask, predicted mask) example."""
    tiles = []
    for x, y, pred in examples:
        img = draw.denormalise(x.float(), mean, std)
        img = img.expand(3, *img.shape[1:]) if img.shape[0] == 1 else img[:3]
        tiles += [img, draw.overlay(img, y == 1), draw.overlay(img, pred == 1, y == 1)]
    return draw.grid(torch.stack(tiles), nrow=3, padding=4, pad_value=1.0)


def make_pictures(model: nn.Module, bundle: DataBundle, logger: RunLogger, out_dir: Optional[Path],
                  device: torch.device, step: Callable[[], int], num_images: int = 16) -> Callable[..., None]:
    """A function `pictures(epoch, val, final=False)`: `val` is a validation result whose meter collected
    mistakes/examples; it writes PNGs into `out_dir` when `final` is true."""
    def emit(tag: str, img: Tensor, final: bool) -> None:
        logger.image(tag, img, step())
        if final and out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            draw.save_png(img, out_dir / f"{tag.replace('/', '_')}.png")

    def pictures(epoch: int, val: dict[str, Any], final: bool = False) -> None:  # noqa: ARG001 (epoch: for callers)
        was_training = model.training
        conv = draw.first_conv(model)
        if conv is not None:
            emit("filters/first_layer", draw.filter_grid(conv.weight.detach().float().cpu()), final)
        if bundle.task == "segmentation":
            if val.get("examples"):
                emit("segmentation/val", segmentation_panel(val["examples"], bundle.mean, bundle.std), final)
        else:
            x, y = head(bundle.val, num_images)
            if x.dim() == 4:  # images: saliency
                sal = draw.saliency(model, x.to(device), y.to(device)).cpu()
                emit("saliency/val", draw.saliency_grid(x.cpu(), sal, bundle.mean, bundle.std), final)
            if val.get("mistakes") is not None and val["mistakes"][0].dim() == 4:
                mx, my, mpred, mconf = val["mistakes"]
                emit("errors/most_confident", draw.misclassified_grid(mx, my, mpred, mconf, bundle.class_names,
                                                                      bundle.mean, bundle.std), final)
        emit("confusion/val", draw.confusion_image(val["confusion"], bundle.class_names), final)
        model.train(was_training)

    return pictures
