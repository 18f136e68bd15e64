"""Each task's metric names (one place) and meters, against hand-computed cases and scikit-learn."""
import pytest
import torch
from sklearn import metrics as skm

from cnnlab.tasks import (ClassificationMeter, SegmentationMeter, check_metric, choose_threshold, metric_names,
                          shown_metrics)
from cnnlab.errors import ConfigError


def test_metric_names_per_task():
    assert metric_names("classification", 10) == ["loss", "acc", "balanced_acc", "macro_f1", "top5"]
    assert metric_names("classification", 2) == ["loss", "acc", "balanced_acc", "macro_f1", "precision", "recall",
                                                  "f1", "iou"]
    assert metric_names("text", 2) == metric_names("classification", 2)
    assert metric_names("segmentation", 2) == ["loss", "acc", "precision", "recall", "f1", "iou"]
    assert metric_names("segmentation", 2, {"patch": 16})[-2:] == ["patch_acc", "patch_f1"]
    assert metric_names("segmentation", 4) == ["loss", "acc", "miou", "macro_f1"]
    assert shown_metrics("segmentation", 2, {"patch": 16}) == ("val/loss", "val/acc", "val/f1", "val/iou",
                                                               "val/patch_f1")
    with pytest.raises(ConfigError, match="val/patch_f1 is not reported for segmentation with 2 classes"):
        check_metric("val/patch_f1", "trainer.monitor", "segmentation", 2, {})
    check_metric("test/iou", "optimized_metric", "segmentation", 2, {}, ("val", "test"))


def test_classification_meter_matches_sklearn_and_keeps_the_worst_mistakes():
    torch.manual_seed(0)
    logits, y = torch.randn(50, 7), torch.randint(0, 7, (50,))
    meter = ClassificationMeter(7, torch.device("cpu"), keep_mistakes=3)
    for lo in range(0, 50, 16):  # batches of 16
        meter.update(torch.arange(lo, min(lo + 16, 50)).float(), y[lo:lo + 16], logits[lo:lo + 16],
                     torch.tensor(1.0))
    out = meter.compute()
    pred = logits.argmax(1).numpy()
    assert out["acc"] == pytest.approx(skm.accuracy_score(y.numpy(), pred))
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y.numpy(), pred, average="macro"))
    assert out["top5"] == pytest.approx(skm.top_k_accuracy_score(y.numpy(), logits.numpy(), k=5, labels=range(7)))
    conf = logits.softmax(1).max(1).values
    wrong = torch.nonzero(logits.argmax(1) != y).flatten()
    worst = wrong[conf[wrong].argsort(descending=True)[:3]]
    assert torch.equal(out["mistakes"][0], worst.float())  # the inputs of the 3 most confident mistakes


def logits_for(prob):
    """2-class logits whose softmax foreground probability is `prob`."""
    p = torch.as_tensor(prob, dtype=torch.float32)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], 1)


def test_segmentation_meter_on_a_hand_computed_case():
    # one 32x32 image: truth = left half; prediction = left 24 columns (prob 0.9), rest prob 0.2
    y = torch.zeros(1, 32, 32, dtype=torch.long)
    y[:, :, :16] = 1
    prob = torch.full((1, 32, 32), 0.2)
    prob[:, :, :24] = 0.9
    meter = SegmentationMeter(2, torch.device("cpu"), patch=16, patch_threshold=0.25, sweep=True)
    meter.update(torch.zeros(1, 3, 32, 32), y, logits_for(prob), torch.tensor(0.5))
    out = meter.compute()
    tp, fp, fn = 32 * 16, 32 * 8, 0
    assert out["precision"] == pytest.approx(tp / (tp + fp)) and out["recall"] == 1.0
    assert out["iou"] == pytest.approx(tp / (tp + fp + fn)) and out["f1"] == pytest.approx(2 * tp / (2 * tp + fp))
    # patches (2x2 of 16x16): truth = left column; prediction: right column has 8/16 = 0.5 > 0.25 foreground
    assert out["patch_f1"] == pytest.approx(2 * 2 / (2 * 2 + 2)) and out["patch_acc"] == 0.5
    # the sweep: at threshold 0.25..0.85 the prediction is the same; above 0.9 nothing is foreground
    assert out["sweep"][0.5]["iou"] == pytest.approx(out["iou"]) and out["sweep"][0.95]["f1"] == 0.0
    assert out["sweep"][0.15]["f1"] == pytest.approx(2 * tp / (2 * tp + 32 * 32 - tp))  # all foreground


def test_ignored_pixels_do_not_count_and_thresholds_are_chosen_on_the_metric():
    y = torch.tensor([[[1, 0, 255, 255]]])
    prob = torch.tensor([[[0.7, 0.6, 0.9, 0.1]]])
    meter = SegmentationMeter(2, torch.device("cpu"), ignore_index=255, sweep=True)
    meter.update(torch.zeros(1, 1, 1, 4), y, logits_for(prob), torch.tensor(0.0))
    out = meter.compute()
    assert out["confusion"].sum() == 2 and out["precision"] == 0.5  # 0.6 > 0.5 counts as a false positive
    best = choose_threshold(out["sweep"], "f1")
    assert 0.6 <= best < 0.7 and out["sweep"][best]["f1"] == 1.0
    assert choose_threshold({0.3: {"f1": 1.0}, 0.5: {"f1": 1.0}, 0.9: {"f1": 0.2}}, "f1") == 0.5  # tie -> 0.5


def test_mistakes_from_token_batches_of_different_widths_are_right_padded_with_pad_ids():
    meter = ClassificationMeter(2, torch.device("cpu"), keep_mistakes=3)
    short = torch.tensor([[5, 6, 7], [8, 9, 4]])           # padded to 3 tokens
    long = torch.tensor([[2, 3, 4, 5, 6], [7, 7, 0, 0, 0]])  # padded to 5 tokens
    wrong_for_1 = torch.tensor([[0.0, 5.0], [0.0, 1.0]])    # class 1 predicted (confidence 0.993, 0.731)
    meter.update(short, torch.tensor([0, 1]), wrong_for_1, torch.tensor(0.0))   # first row wrong
    meter.update(long, torch.tensor([0, 0]), torch.tensor([[0.0, 4.0], [0.0, 1.0]]), torch.tensor(0.0))  # both wrong
    x, y, pred, conf = meter.mistakes
    assert x.tolist() == [[5, 6, 7, 0, 0], [2, 3, 4, 5, 6], [7, 7, 0, 0, 0]]  # most confident first
    assert y.tolist() == [0, 0, 0] and pred.tolist() == [1, 1, 1]
