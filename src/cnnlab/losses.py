"""Losses of the linear baseline (multi-class hinge, least squares, the closed-form ridge check) and of the segmenters
(cross-entropy with class weights and an ignore label, soft Dice, their sum). LeNet-5's RBF loss lives with LeNet.
Each maps (scores [N,K], class indices [N]) to a mean over the batch, weighted by the true class's weight if set."""
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

    def reduce(self, per_sample: Tensor, target: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        """sum_n w_yn l_n / sum_n w_yn over the samples `keep` marks (as torch's cross-entropy); all of them if None."""
        if keep is None and self.weight is None:
            return per_sample.mean()
        w = torch.ones_like(per_sample) if keep is None else keep.to(per_sample.dtype)
        if self.weight is not None:
            w = w * self.weight.to(per_sample.device, per_sample.dtype)[target]
        return (w * per_sample).sum() / w.sum().clamp_min(1e-12)  # all samples ignored: 0, not NaN


class MulticlassHinge(_ClassWeighted):
    """Multi-class hinge loss, one-vs-rest (`kind="ovr"`) or Crammer & Singer's (JMLR 2001), averaged over samples."""

    def __init__(self, kind: str = "ovr", margin: float = 1.0, weight: Weight = None,
                 class_counts: Optional[Sequence[int]] = None) -> None:
        super().__init__(weight, class_counts)
        if kind not in ("ovr", "crammer_singer"):
            raise ConfigError(f"unknown hinge kind {kind!r}: set loss.kind to 'ovr' or 'crammer_singer'")
        self.kind, self.margin = kind, float(margin)

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        true = F.one_hot(target, scores.shape[1]).to(torch.bool)
        if self.kind == "ovr":
            # mean_n sum_k max(0, margin - y_nk s_nk), y_nk = +-1: K decoupled binary SVMs (Cortes & Vapnik 1995);
            # with weight_decay=lam it is LinearSVC(loss="hinge")'s primal with C = 1/(lam*n), bias unpenalised
            signs = true.to(scores.dtype) * 2 - 1
            return self.reduce(F.relu(self.margin - signs * scores).sum(1), target)
        s_true = scores.gather(1, target.unsqueeze(1)).squeeze(1)
        s_other = scores.masked_fill(true, float("-inf")).amax(1)
        return self.reduce(F.relu(self.margin + s_other - s_true), target)  # margin + max_{k != y} s_k - s_y

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, margin={self.margin}"


class SquaredError(_ClassWeighted):
    """Least squares mean_n sum_k (t_nk - s_nk)^2 against one-hot class targets, or float targets (regression)."""

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            return (target.reshape(scores.shape).to(scores.dtype) - scores).pow(2).sum(1).mean()
        onehot = F.one_hot(target, scores.shape[1]).to(scores.dtype)
        return self.reduce((onehot - scores).pow(2).sum(1), target)


class CrossEntropy(_ClassWeighted):
    """Softmax cross-entropy with class weights, label smoothing and an ignore label, per sample or per pixel."""

    def __init__(self, weight: Weight = None, class_counts: Optional[Sequence[int]] = None,
                 label_smoothing: float = 0.0, ignore_index: Optional[int] = None) -> None:
        super().__init__(weight, class_counts)
        self.label_smoothing, self.ignore_index = label_smoothing, ignore_index

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        keep = None if self.ignore_index is None else target != self.ignore_index
        safe = target if keep is None else target.masked_fill(~keep, 0)  # any class: ignored terms weigh 0
        per_sample = F.cross_entropy(scores, safe, reduction="none", label_smoothing=self.label_smoothing)
        return self.reduce(per_sample, safe, keep)


class SoftDice(nn.Module):
    """Soft Dice loss (Milletari et al., "V-Net", 3DV 2016) over all pixels of the batch, from softmax probabilities."""

    def __init__(self, smooth: float = 1.0, include_background: bool = False,
                 ignore_index: Optional[int] = None) -> None:
        super().__init__()
        self.smooth, self.include_background, self.ignore_index = float(smooth), include_background, ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        # 1 - mean_c (2 sum p_c g_c + smooth) / (sum p_c + sum g_c + smooth): overlap, not pixels, so a rare class
        # weighs as much as the background; classes 1..K-1 only unless include_background
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
    """Cross-entropy + `dice_weight` x soft Dice: the usual recipe for masks with a rare foreground."""

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
    """Exact minimiser (W [K,D], b [K]) of (1/n) sum_n |y_n - W x_n - b|^2 + lam/2 |W|^2 (bias unpenalised)."""
    if y.dtype in (torch.int32, torch.int64):  # class indices: one-hot targets
        y = F.one_hot(y, num_classes or int(y.max()) + 1)
    xd, yd = x.double(), y.double()
    n, d = xd.shape
    x_mean, y_mean = xd.mean(0), yd.mean(0)
    xc, yc = xd - x_mean, yd - y_mean  # centring removes b: (Xc^T Xc + (lam*n/2) I) W^T = Xc^T Yc
    gram = xc.T @ xc + (lam * n / 2) * torch.eye(d, dtype=xd.dtype, device=xd.device)
    w = torch.linalg.solve(gram, xc.T @ yc).T  # [K,D]
    b = y_mean - w @ x_mean
    return w.to(x.dtype), b.to(x.dtype)
