"""init=xavier / init=kaiming: the weights follow Glorot & Bengio 2010 and He et al. 2015 (bounds and spreads worked
out from the layer's fans), biases start at zero, marked layers keep theirs, and training applies the scheme."""
import math

import pytest
import torch
from torch import nn

from cnnlab.models.init import init_weights

QUICK = ["data=synthetic", "data.num_samples=16", "trainer.epochs=1", "trainer.batch_size=8",
         "trainer.tensorboard=false", "trainer.pictures_every=0"]


def _layers():
    torch.manual_seed(0)
    # conv: fan_in 64*3*3 = 576, fan_out 128*3*3 = 1152 (73,728 weights); linear: fan_in 300, fan_out 200
    return nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(300, 200))


def test_xavier_is_uniform_with_the_relu_gain_over_fan_in_plus_fan_out():
    net = init_weights(_layers(), "xavier")
    for layer, fan_in, fan_out in ((net[0], 576, 1152), (net[3], 300, 200)):
        bound = math.sqrt(2) * math.sqrt(6 / (fan_in + fan_out))  # gain sqrt(2) for ReLU
        w = layer.weight.detach()
        assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound  # U(-a, a) fills its range
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        assert layer.bias.abs().sum() == 0


def test_kaiming_is_normal_with_spread_sqrt_2_over_fan_in():
    net = init_weights(_layers(), "kaiming")
    for layer, fan_in in ((net[0], 576), (net[3], 300)):
        w = layer.weight.detach()
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
        assert abs(w.mean().item()) < 0.1 * math.sqrt(2 / fan_in)
        assert w.abs().max() > 3 * math.sqrt(2 / fan_in)  # a normal's tails, not a uniform's bound
        assert layer.bias.abs().sum() == 0


def test_default_and_marked_layers_keep_their_weights():
    net = _layers()
    before = [p.detach().clone() for p in net.parameters()]
    init_weights(net, "default")
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    net[0].keeps_init = True
    init_weights(net, "kaiming")
    assert torch.equal(net[0].weight, before[0]) and torch.equal(net[0].bias, before[1])
    assert not torch.equal(net[3].weight, before[2])
    with pytest.raises(ValueError, match="init="):
        init_weights(net, "he")


@pytest.mark.parametrize("scheme", ["xavier", "kaiming"])
def test_training_applies_the_scheme_named_by_init(tmp_path, monkeypatch, scheme):
    from cnnlab.commands import training
    from conftest import run_train

    seen, real = [], training.init_weights

    def spy(model, name, *args, **kwargs):
        seen.append(name)
        return real(model, name, *args, **kwargs)

    monkeypatch.setattr(training, "init_weights", spy)
    run_train(tmp_path, [*QUICK, f"init={scheme}"])
    assert seen == [scheme]
