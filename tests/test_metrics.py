"""Confusion-matrix metrics against scikit-learn."""
import numpy as np
import torch
from sklearn import metrics as skm

from cnnlab.metrics import confusion_matrix, metrics_from_confusion, per_class_accuracy
from cnnlab.tasks import SegmentationMeter


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 400), rng.integers(0, 5, 400)
    cm = confusion_matrix(torch.from_numpy(p), torch.from_numpy(y), 5)
    assert np.array_equal(cm.numpy(), skm.confusion_matrix(y, p, labels=range(5)))
    m = metrics_from_confusion(cm)
    assert np.isclose(m["acc"], skm.accuracy_score(y, p))
    assert np.isclose(m["macro_f1"], skm.f1_score(y, p, average="macro"))
    assert np.isclose(m["miou"], skm.jaccard_score(y, p, average="macro"))
    assert np.isclose(m["balanced_acc"], skm.balanced_accuracy_score(y, p))
    recalls = skm.recall_score(y, p, average=None)
    assert np.allclose(list(per_class_accuracy(cm, list("abcde")).values()), recalls)


def test_binary_masks_give_f1_and_iou_of_the_positive_class():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, (3, 16, 16)), rng.integers(0, 2, (3, 16, 16))
    m = metrics_from_confusion(confusion_matrix(torch.from_numpy(p), torch.from_numpy(y), 2))
    assert np.isclose(m["f1"], skm.f1_score(y.ravel(), p.ravel()))
    assert np.isclose(m["iou"], skm.jaccard_score(y.ravel(), p.ravel()))
    assert np.isclose(m["precision"], skm.precision_score(y.ravel(), p.ravel()))


def test_ignore_index_and_topk():
    y = torch.tensor([[[0, 1, 255, 1]]])
    logits = torch.nn.functional.one_hot(torch.tensor([[[0, 0, 1, 1]]]), 2).permute(0, 3, 1, 2).float()
    meter = SegmentationMeter(2, torch.device("cpu"), ignore_index=255)
    meter.update(logits, y, logits, torch.tensor(0.0))
    assert meter.compute()["confusion"].tolist() == [[1, 0], [1, 1]]


def test_class_predicted_but_absent_counts_in_macro_averages_like_sklearn():
    y, p = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    m = metrics_from_confusion(confusion_matrix(torch.from_numpy(p), torch.from_numpy(y), 3))
    assert np.isclose(m["macro_f1"], skm.f1_score(y, p, average="macro"))
    assert np.isclose(m["miou"], skm.jaccard_score(y, p, average="macro"))
    assert np.isclose(m["balanced_acc"], skm.balanced_accuracy_score(y, p))
