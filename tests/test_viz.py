"""viz: shapes and ranges of the pictures, saliency against a hand-computed gradient, PNGs that PIL reads back."""
import torch
from PIL import Image
from torch import nn

from cnnlab import viz
from cnnlab.models.alexnet import AlexNetSmall

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def in_unit_range(img):
    return img.dim() == 3 and img.shape[0] == 3 and img.min() >= 0 and img.max() <= 1


def test_first_conv_and_filter_grids():
    model = AlexNetSmall()
    assert viz.first_conv(model) is model.features[0]
    assert viz.first_conv(nn.Linear(2, 2)) is None
    rgb = viz.filter_grid(torch.randn(96, 3, 11, 11), scale=2)  # 10 columns x 10 rows of 22 px + 2 px padding
    assert rgb.shape == (3, 4 + 10 * 26, 4 + 10 * 26) and in_unit_range(rgb)
    grey = viz.filter_grid(torch.randn(6, 1, 5, 5))  # LeNet: 3 x 2 tiles of 5 * 8 = 40 px
    assert grey.shape == (3, 4 + 2 * 44, 4 + 3 * 44)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    one = viz.filter_grid(torch.tensor([[[[0.0, 2.0], [4.0, 1.0]]]]), scale=1)
    assert one[0].tolist() == [[0.0, 0.5], [1.0, 0.25]]  # min-max per filter (one tile: no padding)


def test_saliency_matches_the_linear_models_weights():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    x = torch.randn(2, 3, 4, 4)
    target = torch.tensor([1, 3])
    sal = viz.saliency(lin, x, target)
    w = lin[1].weight.detach().view(5, 3, 4, 4)
    torch.testing.assert_close(sal, w[target].abs().amax(1))  # d score_c / d x = w_c for a linear model
    assert all(p.grad is None for p in lin.parameters())


def test_saliency_on_cnn_keeps_shape_mode_and_grads():
    model = AlexNetSmall(norm="bn").train()
    x = torch.randn(3, 3, 32, 32)
    sal = viz.saliency(model, x)
    assert sal.shape == (3, 32, 32) and (sal > 0).any() and (sal >= 0).all()
    assert model.training and all(p.grad is None for p in model.parameters())
    grid = viz.saliency_grid(x, sal, MEAN, STD, pairs_per_row=3)
    assert grid.shape == (3, 2 + 1 * (96 + 2), 2 + 6 * (96 + 2)) and in_unit_range(grid)


def test_denormalise_inverts_normalise():
    raw = torch.rand(2, 3, 5, 5)
    normed = (raw - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    torch.testing.assert_close(viz.denormalise(normed, MEAN, STD), raw)


def test_confusion_image_colours_the_diagonal():
    cm = torch.tensor([[9, 1, 0], [0, 10, 0], [5, 0, 5]])
    img = viz.confusion_image(cm, ["a", "b", "c"], cell=40)
    assert in_unit_range(img) and img.shape[1] > 120 and img.shape[2] > 120
    big = viz.confusion_image(torch.eye(100, dtype=torch.long), [str(i) for i in range(100)])
    assert in_unit_range(big)


def test_misclassified_grid_takes_the_most_confident_mistakes():
    x = torch.randn(6, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    preds = torch.tensor([0, 2, 1, 1, 1, 0])  # 4 mistakes
    conf = torch.tensor([0.9, 0.5, 0.8, 0.99, 0.7, 0.6])
    img = viz.misclassified_grid(x, targets, preds, conf, ["cat", "dog", "fox"], MEAN, STD, k=3)
    assert in_unit_range(img) and img.shape == (3, 2 + 2 * (128 + 14 + 2), 2 + 2 * (128 + 2))
    none = viz.misclassified_grid(x, targets, targets, conf, ["cat", "dog", "fox"], MEAN, STD)
    assert in_unit_range(none)


def test_overlay_tints_prediction_and_outlines_truth():
    image = torch.full((3, 10, 10), 0.5)
    pred = torch.zeros(10, 10)
    pred[:5] = 1
    true = torch.zeros(10, 10)
    true[2:8, 2:8] = 1
    out = viz.overlay(image, pred, true)
    assert out[0, 0, 0] > out[1, 0, 0]  # red tint where predicted
    assert out[:, 2, 2].tolist() == [0.0, 1.0, 0.0] and out[:, 5, 5].tolist() == [0.5, 0.5, 0.5]  # outline only


def test_save_png_round_trip(tmp_path):
    img = torch.rand(3, 7, 9)
    path = viz.save_png(img, tmp_path / "sub" / "x.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (9, 7)
        back = torch.from_numpy(__import__("numpy").asarray(png).copy()).permute(2, 0, 1).float() / 255
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6


def test_grid_matches_torchvision_make_grid():
    from torchvision.utils import make_grid

    for n, c, nrow, pad, value in [(6, 1, 3, 4, 1.0), (96, 3, 10, 4, 1.0), (5, 3, 3, 2, 0.5), (1, 3, 8, 2, 1.0)]:
        tiles = torch.rand(n, c, 7, 9)
        assert torch.equal(viz.grid(tiles, nrow, pad, value), make_grid(tiles, nrow=nrow, padding=pad, pad_value=value))
