"""Losses of the linear baseline (multi-class hinge, least squares, closed-form ridge check) and of the segmenters
(cross-entropy with class weights and an ignore label, soft Dice, their sum).

SVM: Cortes & Vapnik, "Support-vector networks", 1995; Crammer & Singer, "On the algorithmic implementation of
multiclass kernel-based vector machines", JMLR 2001. Every loss maps (scores [N,K], class indices long [N]) to a
scalar mean over the batch; with per-class `weight` w it is the weighted mean sum_n w_yn l_n / sum_n w_yn (as
torch's cross-entropy), which counters class imbalance (roads: ~26 % road patches). The l2 penalty is not here:
run.py gives `weight_decay=lam` to weight matrices only (never biases), so SGD minimises `loss + lam/2 * ||W||^2`. LeNet-5's RBF loss lives with the LeNet model.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ConfigError


Weight = Union[None, str, Sequence[float]]


def class_weights(weight: Weight, class_counts: Optional[Sequence[int]] = None) -> Optional[Tensor]:
    """Per-class weights: None, a list, or "balanced" = n / (K * n_k) from the training labels' class counts."""
    if weight is None:
        return None
    if isinstance(weight, str):
        if weight != "balanced":
            raise ConfigError(f"loss.weight={weight!r}: use null, 'balanced' or one number per class")
        if class_counts is None:
            raise ConfigError("loss.weight=balanced needs the training class counts, which this run does not pass "
                              "to the loss: give one weight per class instead, e.g. loss.weight=[1.0,3.0]")
        counts = torch.tensor([float(c) for c in class_counts])
        return counts.sum() / (len(counts) * counts.clamp_min(1.0))
    values = [float(w) for w in weight]
    if len(values) < 2 or min(values) < 0:
        raise ConfigError(f"loss.weight={values} must give one non-negative weight per class")
    return torch.tensor(values)


class _ClassWeighted(nn.Module):
    """Base of the losses here: optional per-class weights and the (weighted) mean over samples."""

    def __init__(self, weight: Weight = None, class_counts: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.register_buffer("weight", class_weights(weight, class_counts))

    def reduce(self, per_sample: Tensor, target: Tensor) -> Tensor:
        """Mean over samples, weighted by the true class's weight when `weight` is set."""
        if self.weight is None:
            return per_sample.mean()
        w = self.weight.to(per_sample.device, per_sample.dtype)[target]
        return (w * per_sample).sum() / w.sum().clamp_min(1e-12)


class MulticlassHinge(_ClassWeighted):
    """Multi-class hinge loss, `kind="ovr"` (one-vs-rest) or `"crammer_singer"`, averaged over samples.

    one-vs-rest:    mean_n sum_k max(0, margin - y_nk * s_nk), y_nk = +1 for the true class, -1 otherwise.
                    The K binary problems decouple, so with `weight_decay=lam` each row w_k minimises
                    (1/n) sum_n hinge + lam/2 |w_k|^2, i.e. sklearn's LinearSVC(loss="hinge") primal
                    1/2 |w|^2 + C sum_n hinge with C = 1/(lam*n) (liblinear also penalises the bias; we do not).
    crammer_singer: mean_n max(0, margin + max_{k != y} s_nk - s_ny).
    """

    def __init__(self, kind: str = "ovr", margin: float = 1.0, weight: Weight = None,
                 class_counts: Optional[Sequence[int]] = None) -> None:
        super().__init__(weight, class_counts)
        if kind not in ("ovr", "crammer_singer"):
            raise ConfigError(f"unknown hinge kind {kind!r}: set loss.kind to 'ovr' or 'crammer_singer'")
        self.kind, self.margin = kind, float(margin)

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        true = F.one_hot(target, scores.shape[1]).to(torch.bool)
        if self.kind == "ovr":
            signs = true.to(scores.dtype) * 2 - 1
            return self.reduce(F.relu(self.margin - signs * scores).sum(1), target)
        s_true = scores.gather(1, target.unsqueeze(1)).squeeze(1)
        s_other = scores.masked_fill(true, float("-inf")).amax(1)
        return self.reduce(F.relu(self.margin + s_other - s_true), target)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, margin={self.margin}"


class SquaredError(_ClassWeighted):
    """Least squares: mean_n sum_k (t_nk - s_nk)^2 (1/n over samples, summed over outputs), with t the one-hot
    class targets, or the real-valued targets themselves for regression (float targets)."""

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            return (target.reshape(scores.shape).to(scores.dtype) - scores).pow(2).sum(1).mean()
        onehot = F.one_hot(target, scores.shape[1]).to(scores.dtype)
        return self.reduce((onehot - scores).pow(2).sum(1), target)


class CrossEntropy(_ClassWeighted):
    """Softmax cross-entropy (logistic regression's loss) with optional class weights, label smoothing and an ignore
    label; works on [N,K] scores with [N] targets and on [N,K,H,W] logits with [N,H,W] masks (one term per pixel).

    Pixels whose target is `ignore_index` (e.g. 255 for "unlabelled") add nothing and are left out of the
    (weighted) mean, as in torch's `F.cross_entropy(..., ignore_index=)`.
    """

    def __init__(self, weight: Weight = None, class_counts: Optional[Sequence[int]] = None,
                 label_smoothing: float = 0.0, ignore_index: Optional[int] = None) -> None:
        super().__init__(weight, class_counts)
        self.label_smoothing, self.ignore_index = label_smoothing, ignore_index

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        if self.ignore_index is None:
            per_sample = F.cross_entropy(scores, target, reduction="none", label_smoothing=self.label_smoothing)
            return self.reduce(per_sample, target)
        keep = target != self.ignore_index
        safe = target.masked_fill(~keep, 0)  # any valid class index: these terms are zeroed below
        per_sample = F.cross_entropy(scores, safe, reduction="none", label_smoothing=self.label_smoothing)
        w = keep.to(per_sample.dtype)
        if self.weight is not None:
            w = w * self.weight.to(per_sample.device, per_sample.dtype)[safe]
        return (w * per_sample).sum() / w.sum().clamp_min(1e-12)  # all pixels ignored: 0, not NaN


class SoftDice(nn.Module):
    """Soft Dice loss (Milletari et al., "V-Net", 2016): 1 - mean over classes of
    (2 sum p_c g_c + smooth) / (sum p_c + sum g_c + smooth), with p = softmax(logits), g = one-hot(target), the sums
    over all pixels of the batch. Dice counts overlap, not pixels, so a class covering 7 % of the image weighs as
    much as the background. `include_background=False` (the default) averages over classes 1..K-1 only.
    """

    def __init__(self, smooth: float = 1.0, include_background: bool = False,
                 ignore_index: Optional[int] = None) -> None:
        super().__init__()
        self.smooth, self.include_background, self.ignore_index = float(smooth), include_background, ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        k = logits.shape[1]
        probs = logits.float().softmax(1)
        keep = torch.ones_like(target, dtype=torch.bool) if self.ignore_index is None else target != self.ignore_index
        onehot = F.one_hot(target.masked_fill(~keep, 0).long(), k).movedim(-1, 1).to(probs.dtype)
        valid = keep.unsqueeze(1).to(probs.dtype)
        dims = [0] + list(range(2, logits.dim()))  # everything but the class axis
        inter = (probs * onehot * valid).sum(dims)
        total = (probs * valid).sum(dims) + (onehot * valid).sum(dims)
        dice = (2 * inter + self.smooth) / (total + self.smooth)
        return 1 - (dice if self.include_background or k == 1 else dice[1:]).mean()

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}, include_background={self.include_background}"


class CrossEntropyDice(nn.Module):
    """Cross-entropy + `dice_weight` x soft Dice: CE gives every pixel a gradient, Dice rewards overlap of the
    (rare) foreground; the sum is the usual recipe for unbalanced masks."""

    def __init__(self, weight: Weight = None, class_counts: Optional[Sequence[int]] = None,
                 label_smoothing: float = 0.0, ignore_index: Optional[int] = None, dice_weight: float = 1.0,
                 smooth: float = 1.0, include_background: bool = False) -> None:
        super().__init__()
        self.ce = CrossEntropy(weight, class_counts, label_smoothing, ignore_index)
        self.dice = SoftDice(smooth, include_background, ignore_index)
        self.dice_weight = float(dice_weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.ce(logits, target) + self.dice_weight * self.dice(logits, target)


def ridge_closed_form(x: Tensor, y: Tensor, lam: float, num_classes: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """Exact minimiser (W [K,D], b [K]) of (1/n) sum_n |y_n - W x_n - b|^2 + lam/2 |W|^2, bias unpenalised.

    `y` is class indices long [N] (turned into one-hot with `num_classes` columns) or float targets [N,K].
    Centring removes b; the normal equations are (Xc^T Xc + (lam*n/2) I) W^T = Xc^T Yc, solved in float64.
    """
    if y.dtype in (torch.int32, torch.int64):
        y = F.one_hot(y, num_classes or int(y.max()) + 1)
    xd, yd = x.double(), y.double()
    n, d = xd.shape
    x_mean, y_mean = xd.mean(0), yd.mean(0)
    xc, yc = xd - x_mean, yd - y_mean
    gram = xc.T @ xc + (lam * n / 2) * torch.eye(d, dtype=xd.dtype, device=xd.device)
    w = torch.linalg.solve(gram, xc.T @ yc).T  # [K,D]
    b = y_mean - w @ x_mean
    return w.to(x.dtype), b.to(x.dtype)
