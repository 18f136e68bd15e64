"""Segmentation losses: cross-entropy with class weights and an ignore label (against torch), soft Dice by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.losses import CrossEntropy, CrossEntropyDice, SoftDice


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 0, :3] = 255
    target[1, 2, 1] = 255
    return logits, target


@pytest.mark.parametrize("weight", [None, [0.2, 1.0, 3.0]])
def test_cross_entropy_ignore_index_matches_torch(weight):
    logits, target = _case()
    ours = CrossEntropy(weight=weight, ignore_index=255)(logits, target)
    w = None if weight is None else torch.tensor(weight)
    assert torch.allclose(ours, F.cross_entropy(logits, target, weight=w, ignore_index=255), atol=1e-6)
    keep = target != 255  # ignored pixels leave the mean: the same as dropping them
    dropped = F.cross_entropy(logits.movedim(1, -1)[keep], target[keep], weight=w)
    assert torch.allclose(ours, dropped, atol=1e-6)


def test_cross_entropy_balanced_weights_and_no_ignore():
    logits, target = _case(1)
    target[target == 255] = 0
    counts = torch.bincount(target.flatten(), minlength=3)
    loss = CrossEntropy(weight="balanced", class_counts=counts.tolist())(logits, target)
    w = counts.sum() / (3 * counts.float())
    assert torch.allclose(loss, F.cross_entropy(logits, target, weight=w), atol=1e-6)
    assert torch.allclose(CrossEntropy()(logits, target), F.cross_entropy(logits, target), atol=1e-6)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    logits, target = _case()
    assert CrossEntropy(ignore_index=255)(logits, torch.full_like(target, 255)).item() == 0.0


def test_soft_dice_by_hand():
    # p(road) = 0.75 everywhere (logits 0 and ln 3); the mask marks the top row of a 2x2 image as road
    logits = torch.stack([torch.zeros(2, 2), torch.full((2, 2), math.log(3))]).unsqueeze(0)
    target = torch.tensor([[[1, 1], [0, 0]]])
    # road: overlap 2 * 0.75 = 1.5, sum p = 3, sum g = 2 -> (2*1.5 + 1) / (3 + 2 + 1) = 4/6
    assert SoftDice(smooth=1.0)(logits, target).item() == pytest.approx(1 - 4 / 6)
    assert SoftDice(smooth=0.0)(logits, target).item() == pytest.approx(1 - 3 / 5)
    # background: overlap 0.5, sum p = 1, sum g = 2 -> (1 + 1) / (1 + 2 + 1) = 0.5; mean with road's 4/6
    both = SoftDice(smooth=1.0, include_background=True)(logits, target)
    assert both.item() == pytest.approx(1 - (4 / 6 + 0.5) / 2)
    # ignoring the bottom-right pixel: road overlap 1.5, sum p 2.25, sum g 2 -> 4 / 5.25
    ignored = torch.tensor([[[1, 1], [0, 255]]])
    assert SoftDice(ignore_index=255)(logits, ignored).item() == pytest.approx(1 - 4 / 5.25)


def test_soft_dice_is_zero_for_a_perfect_prediction_and_sum():
    target = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    logits = 50 * F.one_hot(target, 3).movedim(-1, 1).float()
    assert SoftDice(smooth=0.0, include_background=True)(logits, target).item() == pytest.approx(0, abs=1e-6)
    logits, target = _case(2)
    target[target == 255] = 1
    total = CrossEntropyDice(weight=[1.0, 2.0, 1.0], dice_weight=0.5)(logits, target)
    expected = CrossEntropy(weight=[1.0, 2.0, 1.0])(logits, target) + 0.5 * SoftDice()(logits, target)
    assert torch.allclose(total, expected)
