"""Confusion-matrix metrics shared by classification and segmentation: accuracy, F1, IoU, per-class accuracy."""
from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """[num_classes, num_classes] int64 counts, rows = true class, columns = predicted; any matching shapes."""
    flat = targets.reshape(-1).long() * num_classes + preds.reshape(-1).long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den, 0 where den is 0."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def metrics_from_confusion(cm: Tensor) -> dict[str, float]:
    """acc, macro F1, mean IoU, balanced acc; for two classes also precision/recall/F1/IoU of the positive class 1."""
    cm = cm.double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    precision, recall = safe_div(tp, predicted), safe_div(tp, support)
    f1 = safe_div(2 * tp, support + predicted)
    iou = safe_div(tp, support + predicted - tp)
    present = (support + predicted) > 0  # as scikit-learn: classes in the targets or the predictions
    seen = support > 0
    out = {
        "acc": (tp.sum() / cm.sum().clamp(min=1)).item(),
        "balanced_acc": recall[seen].mean().item() if seen.any() else 0.0,
        "macro_f1": f1[present].mean().item() if present.any() else 0.0,
        "miou": iou[present].mean().item() if present.any() else 0.0,
    }
    if cm.shape[0] == 2:
        out.update(precision=precision[1].item(), recall=recall[1].item(), f1=f1[1].item(), iou=iou[1].item())
    return out


def per_class_accuracy(cm: Tensor, class_names: list[str]) -> dict[str, float]:
    """Recall of each class (the diagonal over the row sums), keyed by class name."""
    recall = safe_div(cm.diag().double(), cm.sum(1).double())
    return {name: recall[i].item() for i, name in enumerate(class_names)}


