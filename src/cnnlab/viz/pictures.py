"""What to draw, and when: first-layer filters, saliency, confusion and mistakes (classification), image | truth |
prediction overlays (segmentation). Everything but saliency comes from
the validation pass the loop already made."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from ..data.common import DataBundle, head
from ..tblog import RunLogger
from . import draw


def make_pictures(model: nn.Module, bundle: DataBundle, logger: RunLogger, out_dir: Optional[Path],
                  device: torch.device, step: Callable[[], int], num_images: int = 16,
                  smoothgrad: int = 0, split: str = "validation") -> Callable[..., None]:
    """A function `pictures(epoch, val, final=False)`: `val` is a validation result whose meter collected
    mistakes/examples; it writes PNGs into `out_dir` when `final` is true."""
    names = [str(n) for n in bundle.class_names]

    def emit(tag: str, img: Tensor, final: bool) -> None:
        logger.image(tag, img, step())
        if final and out_dir is not None:
            draw.save_png(img, out_dir / f"{tag.replace('/', '_')}.png")

    def classification(val: dict[str, Any], final: bool) -> None:
        x, y = head(bundle.val, num_images)
        if x.dim() == 4:  # images: saliency and mistakes
            x = x.to(device)
            with torch.no_grad():
                pred = model.eval()(x).argmax(1).cpu()
            sal = draw.saliency(model, x, y.to(device), smooth=smoothgrad).cpu()
            emit("saliency/val", draw.saliency_figure(x.cpu(), sal, [names[int(i)] for i in y],
                                                      [names[int(i)] for i in pred], bundle.mean, bundle.std,
                                                      smooth=smoothgrad), final)
            if val.get("mistakes") is not None:
                mx, my, mpred, mconf = val["mistakes"]
                total = int(val["confusion"].sum())
                emit("errors/most_confident", draw.mistakes_figure(mx, my, mpred, mconf, names, bundle.mean,
                                                                   bundle.std, total, split=split), final)

    def pictures(epoch: int, val: dict[str, Any], final: bool = False) -> None:  # noqa: ARG001 (epoch: callers')
        was_training = model.training
        conv = draw.first_conv(model)
        if conv is not None:
            emit("filters/first_layer", draw.filter_figure(conv.weight), final)
        if bundle.task == "segmentation":
            if val.get("examples"):
                emit("segmentation/val", draw.segmentation_figure(val["examples"], bundle.mean, bundle.std, split),
                     final)
        else:
            classification(val, final)
        emit("confusion/val", draw.confusion_figure(val["confusion"], names, f"{split} confusion matrix"), final)
        model.train(was_training)

    return pictures

