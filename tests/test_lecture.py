"""The rest of the lecture: the MLP, the 2-D and 1-D toy problems, regression metrics, the ridge check through the
loop, the layer pictures and back-propagation by hand."""
import json

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from sklearn import metrics as skm
from torch import nn

from cnnlab.checkpoint import load_checkpoint
from cnnlab.data.toy import build_points, build_poly1d, poly_features
from cnnlab.errors import ConfigError
from cnnlab.losses import ridge_closed_form
from cnnlab.models.mlp import MLP
from cnnlab.tasks import RegressionMeter
from cnnlab.viz import layers
from conftest import load_script, run_train


def test_mlp_shapes_on_vectors_and_on_images():
    m = MLP(num_classes=3, hidden=[8, 4], in_features=5)
    assert m(torch.randn(7, 5)).shape == (7, 3)
    assert sum(p.numel() for p in m.parameters()) == (5 * 8 + 8) + (8 * 4 + 4) + (4 * 3 + 3)
    img = MLP(num_classes=10, hidden=[16], in_channels=1)  # the first width comes from the first batch
    assert img(torch.randn(2, 1, 32, 32)).shape == (2, 10) and img.net[1].weight.shape == (16, 1024)
    assert MLP(num_classes=2, hidden=[], in_features=3)(torch.randn(4, 3)).shape == (4, 2)  # linear
    with pytest.raises(ConfigError, match="model.activation=swish"):
        MLP(num_classes=2, activation="swish", in_features=2)


def test_point_sets_are_seeded_two_class_2d():
    a, b = build_points("moons", num_samples=100, seed=3), build_points("moons", num_samples=100, seed=3)
    assert torch.equal(a.train.inputs, b.train.inputs) and a.train.inputs.shape[1] == 2
    assert len(a.train) + len(a.val) + len(a.test) == 100 and set(a.train.targets.tolist()) == {0, 1}
    c = build_points("circles", num_samples=200, noise=0.0, factor=0.5)
    radius = c.train.inputs.norm(dim=1)
    assert torch.allclose(radius[c.train.targets == 0], torch.ones(1), atol=1e-5)  # outer circle: class 0
    assert torch.allclose(radius[c.train.targets == 1], torch.full((1,), 0.5), atol=1e-5)


def test_poly1d_features_are_legendre_and_targets_real():
    x = torch.linspace(-1, 1, 11)
    ours = poly_features(x, 4)
    theirs = np.stack([legendre.legval(x.numpy(), [0] * k + [1]) for k in range(1, 5)], 1)
    assert np.allclose(ours.numpy(), theirs, atol=1e-6)
    assert torch.equal(poly_features(x, 3, "monomial"), torch.stack([x, x ** 2, x ** 3], 1))
    b = build_poly1d(degree=5, num_samples=30)
    assert b.task == "regression" and b.train.targets.shape == (12, 1) and b.train.inputs.shape == (12, 5)


def test_regression_metrics_match_sklearn():
    torch.manual_seed(0)
    y, pred = torch.randn(40, 1), torch.randn(40, 1)
    meter = RegressionMeter(torch.device("cpu"))
    for lo in (0, 25):
        meter.update(None, y[lo:lo + 25], pred[lo:lo + 25], torch.tensor(0.0))
    out = meter.compute()
    assert out["mse"] == pytest.approx(skm.mean_squared_error(y, pred))
    assert out["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_the_loop_with_weight_decay_reaches_the_closed_form_ridge_solution(tmp_path):
    lam = 0.05
    run_dir, _ = run_train(tmp_path, ["experiment=lsq_poly1d", "data.degree=3", f"optim.weight_decay={lam}",
                                      "trainer.epochs=300", "trainer.tensorboard=false"])
    model = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    train = build_poly1d(degree=3).train
    w, b = ridge_closed_form(train.inputs, train.targets, lam)
    torch.testing.assert_close(model["linear.weight"], w, atol=2e-3, rtol=0)
    torch.testing.assert_close(model["linear.bias"], b, atol=2e-3, rtol=0)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "regression" and {"test/mse", "test/r2", "val/r2"} <= set(results)
    assert (run_dir / "pictures" / "fit_val.png").is_file()


def test_an_mlp_separates_the_moons_and_a_linear_model_does_not(tmp_path):
    _, mlp = run_train(tmp_path / "mlp", ["experiment=mlp_moons", "trainer.epochs=40", "trainer.tensorboard=false",
                                          "optimized_metric=test/acc"])
    lin_dir, lin = run_train(tmp_path / "lin", ["model=linear", "data=moons", "trainer.epochs=40",
                                                "trainer.tensorboard=false", "optimized_metric=test/acc"])
    assert mlp >= 0.95 and lin <= 0.90, (mlp, lin)
    assert (lin_dir / "pictures" / "decision_regions_val.png").is_file()


def test_receptive_boxes_and_the_layer_pictures(caplog):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(0.1)
                m.bias.fill_(1.0)
    x = torch.ones(1, 1, 12, 12)
    # the second conv's output at (row 2, col 3) of its 8x8 map sees input rows 2..6, columns 3..7: a 5x5 field
    assert layers.receptive_box(net, net[2], x, channel=1, pos=2 * 8 + 3) == (2, 3, 7, 8)
    inputs = torch.randn(20, 1, 12, 12)
    img = layers.patches_figure(net, "2", inputs, (0.0,), (1.0,), torch.device("cpu"), k=4, channels=3)
    assert img.shape[2] >= 4 * layers.TILE and img.shape[1] >= 3 * layers.TILE
    with caplog.at_level("INFO", logger="cnnlab"):  # more channels asked for than the layer has: all, and said so
        more = layers.patches_figure(net, "2", inputs, (0.0,), (1.0,), torch.device("cpu"), k=4, channels=10)
    assert more.shape == img.shape and "layer 2 has 3 channels: showing all 3 (channels=10)" in caplog.text
    values, index, _ = layers.top_activations(net, net[2], inputs.split(7), 4, torch.device("cpu"))
    with torch.no_grad():
        full = net(inputs).flatten(2).amax(2)  # [N, C]
    assert torch.allclose(values, full.T.topk(4, dim=1).values) and index.shape == (3, 4)
    with pytest.raises(ConfigError, match="layer=nope is not a layer of Sequential: its conv layers are 0, 2"):
        layers.find_layer(net, "nope")
    assert layers.maximise_channel(net, net[2], 0, (1, 12, 12), torch.device("cpu"), steps=4).shape == (1, 12, 12)


def test_backprop_by_hand_matches_autograd(capsys):
    script = load_script("backprop_by_hand")
    assert script.by_hand(2.0, 1.0) == {"a": 2.0, "b": 1.0, "c": 3.0, "d": 2.0, "f": 6.0, "df/dc": 2.0,
                                        "df/dd": 3.0, "df/da": 2.0, "df/db": 5.0}
    assert script.main(["--a", "-3", "--b", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "df/db = df/dc * dc/db + df/dd * dd/db = 1.5 * 1 + -2.5 * 1 = -1" in out
    assert "torch.autograd gives the same 9 values" in out
