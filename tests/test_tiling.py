"""Tiled whole-image inference: exact for networks whose context fits in the overlap, close for a U-Net."""
import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.unet import UNet
from cnnlab.tiling import tile_starts, tiled_logits


def test_tile_starts_cover_the_image_and_end_at_the_border():
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tile_starts(32, 32, 8) == [0] and tile_starts(20, 32, 8) == [0]


@torch.no_grad()
def test_pointwise_net_is_exact():
    net = nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 70, 53)
    assert torch.equal(tiled_logits(net, x, tile=32, overlap=8), net(x))
    assert torch.equal(tiled_logits(net, x, tile=16, overlap=0), net(x))


@torch.no_grad()
def test_net_whose_context_fits_in_half_the_overlap_is_exact():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 2, 3, padding=1))  # sees 3 pixels each way; margin overlap/2 = 4
    x = torch.randn(1, 3, 77, 90)
    assert torch.allclose(tiled_logits(net, x, tile=40, overlap=8), net(x), atol=1e-5)
    assert not torch.allclose(tiled_logits(net, x, tile=40, overlap=2), net(x), atol=1e-5)  # margin too small


@torch.no_grad()
def test_unet_tiled_matches_untiled_in_the_interior():
    torch.manual_seed(0)
    net = UNet(2, in_channels=1, base=4, depth=3).eval()
    x = torch.randn(1, 1, 96, 160)
    full = net(x)
    err = (tiled_logits(net, x, tile=64, overlap=32) - full)[..., 8:-8, 8:-8].abs()
    seams = (tiled_logits(net, x, tile=64, overlap=0) - full)[..., 8:-8, 8:-8].abs()  # no context at the seams
    assert err.max() < 1e-3 * full.std()
    assert err.max() < 0.01 * seams.max()  # the overlap is what removes the seams


def test_bad_tiles_are_config_errors():
    with pytest.raises(ConfigError, match="overlap"):
        tiled_logits(nn.Identity(), torch.zeros(1, 1, 8, 8), tile=8, overlap=8)
    with pytest.raises(ConfigError, match="overlap"):
        tiled_logits(nn.Identity(), torch.zeros(1, 1, 8, 8), tile=8, overlap=3)


@torch.no_grad()
def test_dihedral_test_time_augmentation_is_equivariant():
    from cnnlab.tiling import dihedral_mean_probs

    torch.manual_seed(0)
    point = nn.Conv2d(3, 2, 1)
    x = torch.randn(2, 3, 12, 20)
    assert torch.allclose(dihedral_mean_probs(point, x), point(x).softmax(1), atol=1e-6)
    skew = nn.Conv2d(3, 2, (1, 3), padding=(0, 1))  # not symmetric: its plain output is not flip-equivariant
    assert not torch.allclose(skew(x.flip(-1)).flip(-1), skew(x), atol=1e-4)
    tta = dihedral_mean_probs(skew, x)
    assert torch.allclose(dihedral_mean_probs(skew, x.flip(-1)).flip(-1), tta, atol=1e-6)
    assert torch.allclose(dihedral_mean_probs(skew, x.transpose(-1, -2)).transpose(-1, -2), tta, atol=1e-6)
