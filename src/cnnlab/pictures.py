"""What the network learned, as TensorBoard images and PNGs: first-layer filters, saliency, confusion, mistakes."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from . import viz
from .data.common import DataBundle, TensorLoader, TensorSplit, head
from .metrics import confusion_matrix
from .tblog import RunLogger


@torch.no_grad()
def _predict(model: nn.Module, split, device: torch.device, limit: int = 5000, batch: int = 500):
    """Logits of up to `limit` samples of `split` (a fixed prefix, so pictures are comparable across epochs)."""
    model.eval()
    xs, ys, outs = [], [], []
    prefix = head(split, limit) if isinstance(split, TensorSplit) else \
        torch.utils.data.Subset(split, range(min(limit, len(split))))
    batches = TensorLoader(TensorSplit(*prefix), batch) if isinstance(prefix, tuple) else \
        torch.utils.data.DataLoader(prefix, batch_size=batch)
    for x, y in batches:
        outs.append(model(x.to(device)).float().cpu())
        xs.append(x.cpu())
        ys.append(y.cpu())
    return torch.cat(xs), torch.cat(ys), torch.cat(outs)


def make_pictures(model: nn.Module, bundle: DataBundle, logger: RunLogger, out_dir: Optional[Path],
                  device: torch.device, step: Callable[[], int], num_images: int = 16) -> Callable[..., None]:
    """A function `pictures(epoch, final=False)`; it writes PNGs into `out_dir` when `final` is true."""
    def emit(tag: str, img: Tensor, final: bool) -> None:
        logger.image(tag, img, step())
        if final and out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            viz.save_png(img, out_dir / f"{tag.replace('/', '_')}.png")

    def pictures(epoch: int, final: bool = False) -> None:
        if bundle.task != "classification":
            return
        was_training = model.training
        conv = viz.first_conv(model)
        if conv is not None:
            emit("filters/first_layer", viz.filter_grid(conv.weight.detach().float().cpu()), final)
        limit = 5000 if isinstance(bundle.val, TensorSplit) else 512  # on-disk images: bounded memory
        x, y, logits = _predict(model, bundle.val, device, limit=limit)
        if x.dim() == 4:  # images: saliency and the worst mistakes
            sal = viz.saliency(model, x[:num_images].to(device), y[:num_images].to(device)).cpu()
            emit("saliency/val", viz.saliency_grid(x[:num_images], sal, bundle.mean, bundle.std), final)
            probs = logits.softmax(1)
            conf, pred = probs.max(1)
            emit("errors/most_confident", viz.misclassified_grid(x, y, pred, conf, bundle.class_names,
                                                                 bundle.mean, bundle.std), final)
        cm = confusion_matrix(logits.argmax(1), y, bundle.num_classes)
        emit("confusion/val", viz.confusion_image(cm, bundle.class_names), final)
        model.train(was_training)

    return pictures
