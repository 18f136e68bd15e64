"""LeNet-5 against the sizes and counts stated in LeCun et al. 1998 (and the lecture)."""
import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models.lenet import C3_TABLE, LeNet5, LeNet5Classic, RBFLoss, rbf_prototypes


def _activation_sizes(model, layers):
    sizes = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda m, i, o, name=name: sizes.__setitem__(name, o[0].numel())) for name in layers]
    model(torch.zeros(1, 1, 32, 32))
    for h in hooks:
        h.remove()
    return sizes


def test_classic_layer_sizes_match_the_paper():
    sizes = _activation_sizes(LeNet5Classic(), ["c1", "s2", "c3", "s4", "c5", "f6"])
    assert sizes == {"c1": 6 * 28 * 28, "s2": 6 * 14 * 14, "c3": 16 * 10 * 10, "s4": 16 * 5 * 5, "c5": 120, "f6": 84}
    assert sizes["c1"] == 4704 and sizes["c3"] == 1600  # the lecture's figures


def test_modern_layer_sizes_match_the_paper():
    m = LeNet5()
    c1, c3 = m.features[0], m.features[3]
    sizes = {}
    c1.register_forward_hook(lambda mod, i, o: sizes.__setitem__("c1", o[0].numel()))
    c3.register_forward_hook(lambda mod, i, o: sizes.__setitem__("c3", o[0].numel()))
    assert m(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert sizes == {"c1": 4704, "c3": 1600}


def test_classic_trainable_parameters_match_the_paper():
    m = LeNet5Classic()
    # Paper, Section II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164 trainable parameters.
    assert sum(p.numel() for p in m.c1.parameters()) == 156
    assert sum(p.numel() for p in m.s2.parameters()) == 12
    assert m.c3.effective_parameters() == 1516
    assert sum(p.numel() for p in m.s4.parameters()) == 32
    assert sum(p.numel() for p in m.c5.parameters()) == 48120
    assert sum(p.numel() for p in m.f6.parameters()) == 10164
    # C3 connections: 1,516 weights applied at 10x10 positions = 151,600 (the paper says 151,600).
    assert m.c3.effective_parameters() * 100 == 151600
    assert len(C3_TABLE) == 16 and sorted(len(t) for t in C3_TABLE) == [3] * 6 + [4] * 9 + [6]


def test_c3_ignores_unconnected_maps():
    m = LeNet5Classic().c3
    x = torch.randn(1, 6, 14, 14)
    y = m(x)
    x2 = x.clone()
    x2[:, 3] += 5.0  # map 3 does not feed C3 map 0 (Table I: inputs 0, 1, 2)
    assert torch.allclose(m(x2)[:, 0], y[:, 0]) and not torch.allclose(m(x2)[:, 3], y[:, 3])


def test_rbf_output_and_loss_are_squared_distances():
    protos = rbf_prototypes(10)
    assert protos.shape == (10, 84) and set(protos.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(p.tolist()) for p in protos}) == 10
    m = LeNet5Classic()
    x = torch.randn(4, 1, 32, 32)
    f6 = m.features(x)
    expected = ((f6[:, None, :] - protos[None]) ** 2).sum(-1)
    logits = m(x)
    assert torch.allclose(-logits, expected, atol=1e-3)
    y = torch.tensor([0, 3, 5, 9])
    assert torch.allclose(RBFLoss()(logits, y), expected[torch.arange(4), y].mean(), atol=1e-3)


@pytest.mark.parametrize("cls", [LeNet5, LeNet5Classic])
def test_wrong_input_size_is_a_clear_error(cls):
    with pytest.raises(ConfigError, match="data.pad=2"):
        cls().check_input(torch.zeros(2, 1, 28, 28))
