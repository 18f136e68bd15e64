"""AlexNet against the paper's figures, a hand count of its weights, and torchvision's variant."""
import pytest
import torch
import torchvision
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.alexnet import AlexNet, AlexNetSmall, PaperLRN, spatial_out


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(cin, cout, k, groups=1):
    return cout * (cin // groups) * k * k + cout


def fc(cin, cout):
    return cin * cout + cout


# Figure 2 of the paper, layer by layer: weights + biases.
PAPER_CONVS = [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
PAPER_FCS = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]


def test_parameter_count_matches_hand_count_and_paper():
    hand = sum(conv(*c) for c in PAPER_CONVS) + sum(fc(*f) for f in PAPER_FCS)
    assert hand == 62_378_344
    assert n_params(AlexNet(num_classes=1000)) == hand
    assert abs(hand - 60e6) / 60e6 < 0.05  # "60 million parameters" (abstract)


def test_towers_count_follows_grouped_convs():
    groups = [1, 2, 1, 2, 2]  # conv2, conv4, conv5 stay within a GPU (figure 2)
    hand = sum(conv(*c, groups=g) for c, g in zip(PAPER_CONVS, groups)) + sum(fc(*f) for f in PAPER_FCS)
    model = AlexNet(towers=True)
    assert n_params(model) == hand == 60_965_224
    assert n_params(model) < n_params(AlexNet())
    assert [m.groups for m in model.modules() if isinstance(m, nn.Conv2d)] == groups


def test_first_layer_is_96_filters_11x11x3_stride_4():
    first = next(m for m in AlexNet().modules() if isinstance(m, nn.Conv2d))
    assert first.weight.shape == (96, 3, 11, 11)
    assert first.stride == (4, 4)


def test_torchvision_differs_only_in_its_narrower_convs():
    # torchvision's one-GPU variant (Krizhevsky 2014) has 64/192 maps in conv1/conv2 and 384->256 in conv4.
    tv_convs = [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)]
    tv = torchvision.models.alexnet(weights=None, num_classes=1000)
    assert n_params(tv) == sum(conv(*c) for c in tv_convs) + sum(fc(*f) for f in PAPER_FCS)
    ours_fc = sum(p.numel() for p in AlexNet().classifier.parameters())
    assert ours_fc == sum(p.numel() for p in tv.classifier.parameters())


@pytest.mark.parametrize("size", [224, 227])
def test_alexnet_output_and_feature_shape(size):
    model = AlexNet(num_classes=7).eval()
    x = torch.randn(2, 3, size, size)
    assert model.features(x).shape == (2, 256, 6, 6)
    assert model(x).shape == (2, 7)
    assert AlexNet(num_classes=5, towers=True)(x).shape == (2, 5)


def test_paper_spatial_sizes():
    first = nn.Sequential(AlexNet().features[0])
    assert spatial_out(first, 224) == 55  # "55 x 55" in figure 2


def test_lrn_is_the_papers_formula():
    x = torch.randn(2, 10, 3, 3)
    sq = nn.functional.pad(x * x, (0, 0, 0, 0, 2, 2))
    sums = torch.stack([sq[:, c:c + 5].sum(1) for c in range(10)], 1)  # n = 5 neighbouring maps
    expected = x / (2 + 1e-4 * sums) ** 0.75  # k = 2, alpha = 1e-4, beta = 0.75 (section 3.3)
    torch.testing.assert_close(PaperLRN()(x), expected)
    grouped = PaperLRN(groups=2)(x)
    torch.testing.assert_close(grouped[:, :5], PaperLRN()(x[:, :5]))


def test_small_output_and_size():
    model = AlexNetSmall(num_classes=10)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert 2e6 <= n_params(model) <= 3e6
    assert AlexNetSmall(norm="bn", in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert [m.kernel_size for m in model.modules() if isinstance(m, nn.MaxPool2d)] == [3, 3, 3]


def test_mismatched_inputs_name_the_config_to_change():
    with pytest.raises(ConfigError, match=r"model=alexnet expects 3x224x224 .*got 3x32x32: use model=alexnet_small"):
        AlexNet().check_input(torch.randn(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="the data has 1: choose RGB data"):
        AlexNet().check_input(torch.randn(1, 1, 224, 224))
    with pytest.raises(ConfigError, match="model=alexnet_small expects 3x32x32"):
        AlexNetSmall().check_input(torch.randn(1, 3, 224, 224))
    with pytest.raises(ConfigError, match="model.norm"):
        AlexNetSmall(norm="group")
