"""Per task (classification, text, segmentation, regression), the meter that computes its metrics from (inputs,
targets, logits) batches: their names are the one list. Binary masks are thresholded on the foreground probability;
roads are also scored per 16x16 patch (foreground when its mean exceeds 0.25, the CIL rule)."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.text import PAD_ID
from .distributed import all_reduce_
from .errors import ConfigError
from .metrics import confusion_matrix, metrics_from_confusion, safe_div

TASKS = ("classification", "text", "segmentation", "regression")
CLASS_TASKS = ("classification", "text")  # one label per sample: a class confusion matrix, per-class accuracy
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # candidate decision thresholds, chosen on val


def metric_names(task: str, num_classes: int, state: Optional[dict] = None) -> list[str]:
    """The keys a task's evaluation reports (without the `val/` or `test/` prefix): the numbers its meter computes."""
    computed = new_meter(task, num_classes, torch.device("cpu"), state).compute()
    return [k for k, v in computed.items() if isinstance(v, float)]


def shown_metrics(task: str, num_classes: int, state: Optional[dict] = None) -> tuple[str, ...]:
    """The validation metrics on each epoch's console line (TensorBoard gets all of them)."""
    names = metric_names(task, num_classes, state)
    keep = ("loss", "acc", "top5", "f1", "iou", "miou", "patch_f1", "mse", "r2")
    return tuple(f"val/{n}" for n in names if n in keep)


def check_metric(key: str, what: str, task: str, num_classes: int, state: dict, prefixes=("val",)) -> None:
    """ConfigError unless `key` (e.g. val/acc) is one the task reports."""
    valid = [f"{p}/{m}" for p in prefixes for m in metric_names(task, num_classes, state)]
    if key not in valid:
        raise ConfigError(f"{what}={key} is not reported for {task} with {num_classes} classes: use one of "
                          f"{', '.join(valid)}")


def _same_width(a: Tensor, b: Tensor) -> "tuple[Tensor, Tensor]":
    """Right-pad the narrower of two token-id batches with `<pad>`, so that inputs kept from several batches stack."""
    if a.dim() == 2 and b.dim() == 2 and a.shape[1] != b.shape[1]:
        width = max(a.shape[1], b.shape[1])
        a, b = (F.pad(t, (0, width - t.shape[1]), value=PAD_ID) for t in (a, b))
    return a, b


class ClassificationMeter:
    """Loss, confusion matrix, top-5 and (optionally) the k most confidently wrong inputs, batch by batch."""

    def __init__(self, num_classes: int, device: torch.device, keep_mistakes: int = 0) -> None:
        self.k = num_classes
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.loss_sum, self.n = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
        self.top5 = torch.zeros((), dtype=torch.long, device=device)
        self.keep = keep_mistakes
        self.mistakes: Optional[tuple[Tensor, Tensor, Tensor, Tensor]] = None

    def update(self, x: Tensor, y: Tensor, logits: Tensor, loss: Tensor) -> None:
        pred = logits.argmax(1)
        self.cm += confusion_matrix(pred, y, self.k)
        self.loss_sum += loss * len(y)
        self.n += len(y)
        if self.k > 5:
            self.top5 += (logits.topk(5, dim=1).indices == y.unsqueeze(1)).any(dim=1).sum()
        if self.keep:
            self._keep_mistakes(x, y, logits)

    def _keep_mistakes(self, x: Tensor, y: Tensor, logits: Tensor) -> None:
        conf, pred = logits.softmax(1).max(1)
        wrong = pred != y
        new = (x[wrong], y[wrong], pred[wrong], conf[wrong])
        if self.mistakes is not None:
            new = tuple(torch.cat(_same_width(a, b)) for a, b in zip(self.mistakes, new))
        order = new[3].argsort(descending=True)[:self.keep]
        self.mistakes = tuple(t[order] for t in new)

    def reduce(self) -> None:
        """Sum the counts over the ranks of a data-parallel run (the mistakes stay this rank's)."""
        all_reduce_([self.cm, self.loss_sum, self.n, self.top5])

    def compute(self) -> dict[str, Any]:
        n = max(int(self.n), 1)
        out: dict[str, Any] = {"loss": self.loss_sum.item() / n}
        metrics = metrics_from_confusion(self.cm.cpu())
        out.update({k: v for k, v in metrics.items() if k != "miou"})
        if self.k > 5:
            out["top5"] = self.top5.item() / n
        out["confusion"] = self.cm.cpu()
        if self.keep:
            out["mistakes"] = tuple(t.cpu() for t in self.mistakes) if self.mistakes is not None else None
        return out


def _patch_labels(fg: Tensor, patch: int, threshold: float) -> Tensor:
    """[N,H,W] {0,1} -> [N,H//p,W//p] patch labels: mean foreground > threshold (pixels past whole patches dropped)."""
    h, w = fg.shape[-2] // patch * patch, fg.shape[-1] // patch * patch
    return (F.avg_pool2d(fg[:, None, :h, :w].float(), patch)[:, 0] > threshold).long()


def _tp_fp_fn(pred: Tensor, truth: Tensor) -> list[Tensor]:
    """True positives, false positives and false negatives of boolean predictions."""
    return [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()]


class SegmentationMeter:
    """Pixel confusion (ignoring `ignore_index`), patch confusion for roads, a threshold sweep, example masks."""

    dense = True  # per-pixel logits: evaluation may tile whole images and average flips

    def __init__(self, num_classes: int, device: torch.device, threshold: float = 0.5,
                 ignore_index: Optional[int] = None, patch: int = 0, patch_threshold: float = 0.25,
                 sweep: bool = False, keep_examples: int = 0) -> None:
        self.k, self.threshold, self.ignore = num_classes, threshold, ignore_index
        self.patch, self.patch_threshold = patch, patch_threshold
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.patch_cm = torch.zeros(2, 2, dtype=torch.long, device=device)
        self.loss_sum, self.n = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
        # per candidate threshold: pixel tp, fp, fn and patch tp, fp, fn
        self.sweep = torch.zeros(len(THRESHOLDS), 6, dtype=torch.long, device=device) if sweep else None
        self.keep, self.examples = keep_examples, []

    def update(self, x: Tensor, y: Tensor, logits: Tensor, loss: Tensor) -> None:
        prob = logits.float().softmax(1)[:, 1] if self.k == 2 else None  # the foreground's probability
        pred = (prob > self.threshold).long() if prob is not None else logits.argmax(1)
        y = y.long()
        valid = y != self.ignore if self.ignore is not None else torch.ones_like(y, dtype=torch.bool)
        self.cm += confusion_matrix(pred[valid], y[valid], self.k)
        self.loss_sum += loss * len(y)
        self.n += len(y)
        truth = (y == 1) & valid
        true_p = _patch_labels(truth, self.patch, self.patch_threshold) if self.patch and self.k == 2 else None
        if true_p is not None:
            self.patch_cm += confusion_matrix(_patch_labels(pred == 1, self.patch, self.patch_threshold), true_p, 2)
        if self.sweep is not None and prob is not None:
            for i, t in enumerate(THRESHOLDS):
                p = (prob > t) & valid
                pp = _patch_labels(p, self.patch, self.patch_threshold).bool() if true_p is not None else None
                patch = _tp_fp_fn(pp, true_p.bool()) if pp is not None else [p.sum() * 0] * 3
                self.sweep[i] += torch.stack(_tp_fp_fn(p, truth) + patch)
        if len(self.examples) < self.keep:
            take = self.keep - len(self.examples)
            self.examples += [(a.cpu(), b.cpu(), c.cpu()) for a, b, c in zip(x[:take], y[:take], pred[:take])]

    def reduce(self) -> None:
        """Sum the counts over the ranks of a data-parallel run (the examples stay this rank's)."""
        all_reduce_([self.cm, self.patch_cm, self.loss_sum, self.n] + ([self.sweep] if self.sweep is not None else []))

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loss": self.loss_sum.item() / max(int(self.n), 1)}
        m = metrics_from_confusion(self.cm.cpu())
        keys = ("acc", "miou", "macro_f1") if self.k > 2 else ("acc", "precision", "recall", "f1", "iou")
        out.update({k: m[k] for k in keys})
        if self.patch and self.k == 2:
            pm = metrics_from_confusion(self.patch_cm.cpu())
            out.update(patch_acc=pm["acc"], patch_f1=pm["f1"])
        out["confusion"] = self.cm.cpu()
        if self.sweep is not None:
            out["sweep"] = _sweep_scores(self.sweep.cpu().double())
        if self.keep:
            out["examples"] = self.examples
        return out


def _sweep_scores(counts: Tensor) -> dict[float, dict[str, float]]:
    tp, fp, fn, ptp, pfp, pfn = counts.unbind(1)
    iou, f1 = safe_div(tp, tp + fp + fn), safe_div(2 * tp, 2 * tp + fp + fn)
    pf1 = safe_div(2 * ptp, 2 * ptp + pfp + pfn)
    return {t: {"f1": f1[i].item(), "iou": iou[i].item(), "patch_f1": pf1[i].item()} for i, t in enumerate(THRESHOLDS)}


def choose_threshold(sweep: dict[float, dict[str, float]], metric: str) -> float:
    """The candidate threshold with the best `metric` (f1, iou or patch_f1); ties go to the one nearest 0.5."""
    return max(sweep, key=lambda t: (round(sweep[t][metric], 12), -abs(t - 0.5)))


class RegressionMeter:
    """Mean squared error and R^2 = 1 - SS_res / SS_tot (over all outputs) of real-valued targets."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # SS_res, sum y, sum y^2, count
        self.loss_sum, self.n = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)

    def update(self, x: Tensor, y: Tensor, pred: Tensor, loss: Tensor) -> None:
        y, pred = y.double().reshape(pred.shape), pred.double()
        self.sums += torch.stack([(pred - y).pow(2).sum(), y.sum(), y.pow(2).sum(), y.new_tensor(float(y.numel()))])
        self.loss_sum += loss * len(y)
        self.n += len(y)

    def reduce(self) -> None:
        """Sum over the ranks of a data-parallel run."""
        all_reduce_([self.sums, self.loss_sum, self.n])

    def compute(self) -> dict[str, Any]:
        ss_res, total, squares, count = self.sums.tolist()
        ss_tot = squares - total * total / max(count, 1)
        return {"loss": self.loss_sum.item() / max(int(self.n), 1), "mse": ss_res / max(count, 1),
                "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0, "confusion": torch.zeros(0, 0)}


def new_meter(task: str, num_classes: int, device: torch.device, state: Optional[dict] = None,
              collect: int = 0, sweep: bool = False) -> Any:
    """The meter of `task`; `collect` keeps that many mistakes (classification) or example masks (segmentation)."""
    state = state or {}
    if task in CLASS_TASKS:
        return ClassificationMeter(num_classes, device, keep_mistakes=collect)
    if task == "regression":
        return RegressionMeter(device)
    if task == "segmentation":
        return SegmentationMeter(num_classes, device, threshold=float(state.get("threshold", 0.5)),
                                 ignore_index=state.get("ignore_index"), patch=int(state.get("patch") or 0),
                                 patch_threshold=float(state.get("patch_threshold", 0.25)), sweep=sweep,
                                 keep_examples=collect)
    raise ConfigError(f"unknown task {task!r}: a data builder must set task to one of {', '.join(TASKS)}")
