"""Hand-designed features: values on hand-made images, shapes, and train-only standardisation."""
import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.features import (SOBEL_X, FeatureSpec, Standardiser, colour_histogram, colour_moments, extract,
                             gradient_histograms, hog, sobel, sobel_image)


def step_image(h: int = 16, w: int = 16, at: int = 8) -> torch.Tensor:
    """One grey image, 0 left of column `at`, 1 from it on: a vertical edge."""
    x = torch.zeros(1, 1, h, w)
    x[..., at:] = 1.0
    return x


def test_vertical_edge_fires_horizontal_gradient_only():
    gx, gy = sobel(step_image())
    assert gy.abs().max() == 0
    assert torch.all(gx[0, :, 7] == 4) and torch.all(gx[0, :, 8] == 4)  # both columns beside the edge
    gx[0, :, 7:9] = 0
    assert gx.abs().max() == 0


def test_horizontal_edge_fires_vertical_gradient_only():
    x = step_image().transpose(-1, -2).contiguous()
    gx, gy = sobel(x)
    assert gx.abs().max() == 0 and gy.max() == 4 and gy.min() == 0


def test_flat_image_has_zero_gradient_everywhere():
    gx, gy = sobel(torch.full((2, 3, 9, 7), 0.7))
    assert gx.abs().max() < 1e-6 and gy.abs().max() < 1e-6
    assert gradient_histograms(torch.full((1, 1, 16, 16), 0.3)).abs().max() < 1e-6


def test_sobel_hand_computed_values():
    x = torch.tensor([[1.0, 2.0, 4.0], [0.0, 3.0, 5.0], [2.0, 2.0, 8.0]]).view(1, 1, 3, 3)
    gx, gy = sobel(x)
    # centre pixel: correlation with [[-1,0,1],[-2,0,2],[-1,0,1]] and its transpose
    assert gx[0, 1, 1] == (4 - 1) + 2 * (5 - 0) + (8 - 2)
    assert gy[0, 1, 1] == (2 - 1) + 2 * (2 - 2) + (8 - 4)
    # top-left pixel with replicated borders: padded rows/cols repeat the edge values
    assert gx[0, 0, 0] == (2 - 1) + 2 * (2 - 1) + (3 - 0)
    assert gy[0, 0, 0] == (0 - 1) + 2 * (0 - 1) + (3 - 2)


def test_sobel_uses_channel_mean():
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(sobel(rgb)[0], sobel(rgb.mean(1, keepdim=True))[0], atol=1e-6)


def test_colour_histogram_two_colours():
    x = torch.zeros(1, 3, 4, 4)
    x[0, :, :, :1] = torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1)   # a quarter of the pixels
    x[0, :, :, 1:] = torch.tensor([0.0, 1.0, 0.5]).view(3, 1, 1)   # three quarters
    h = colour_histogram(x, bins=4).view(3, 4)
    assert torch.allclose(h[0], torch.tensor([0.75, 0, 0, 0.25]))  # 1.0 is the top edge: last bin
    assert torch.allclose(h[1], torch.tensor([0.25, 0, 0, 0.75]))
    assert torch.allclose(h[2], torch.tensor([0, 0, 1.0, 0]))       # 0.5 opens bin 2 of [0,.25,.5,.75,1]


def test_colour_histogram_sums_to_one_per_channel_and_grey():
    x = torch.rand(5, 3, 10, 12) * 3 - 1  # values outside the range are clamped into the end bins
    assert torch.allclose(colour_histogram(x, bins=7).view(5, 3, 7).sum(-1), torch.ones(5, 3))
    g = colour_histogram(torch.rand(4, 1, 8, 8), bins=16, value_range=(0.0, 1.0))
    assert g.shape == (4, 16) and torch.allclose(g.sum(1), torch.ones(4))
    with pytest.raises(ConfigError):
        colour_histogram(x, bins=4, value_range=(1.0, 0.0))


def test_hog_shape_for_known_sizes():
    assert hog(torch.rand(3, 1, 28, 28)).shape == (3, 2 * 2 * 2 * 2 * 9)  # 3x3 cells -> 2x2 blocks
    assert hog(torch.rand(2, 3, 32, 32)).shape == (2, 3 * 3 * 36)        # 4x4 cells -> 3x3 blocks
    assert hog(torch.rand(2, 3, 16, 16), cell=4, block=3, bins=6).shape == (2, 2 * 2 * 9 * 6)
    with pytest.raises(ConfigError):
        hog(torch.rand(1, 1, 8, 8))


def test_hog_hand_checked_vertical_edge():
    # Each of the 4 cells holds one gradient column of 8 pixels, magnitude 4, angle 0 -> bin 0 = 32.
    # Block [32,0..,32,0..,32,0..,32,0..] has norm 64 -> 0.5 each; clipping to 0.2 and renormalising gives 0.5 again.
    h = hog(step_image()).view(4, 9)
    expected = torch.zeros(4, 9)
    expected[:, 0] = 0.5
    assert torch.allclose(h, expected, atol=1e-5)


def test_orientation_soft_binning_between_centres():
    # A 45-degree ramp: gx = gy everywhere, angle 45 = 2.25 bins of 20 degrees -> 0.75 to bin 2, 0.25 to bin 3.
    r = torch.arange(8.0)
    x = (r.view(-1, 1) + r.view(1, -1)).view(1, 1, 8, 8)
    gx, gy = sobel(x)
    assert torch.allclose(gx[0, 1:7, 1:7], torch.full((6, 6), 8.0)) and torch.equal(gx[0, 1:7, 1:7], gy[0, 1:7, 1:7])
    per_pixel = gradient_histograms(x, cell=1, bins=9).view(8, 8, 9)  # one-pixel cells
    mag = 8 * 2 ** 0.5
    expected = torch.zeros(9)
    expected[2], expected[3] = 0.75 * mag, 0.25 * mag
    assert torch.allclose(per_pixel[3, 4], expected, atol=1e-4)


def test_extract_concatenates_in_order_and_rejects_unknown_names():
    x = torch.rand(3, 3, 16, 16)
    f = extract(x, FeatureSpec(["colour_moments", "raw_pixels", "colour_histogram"], hist_bins=4))
    assert f.shape == (3, 6 + 768 + 12)
    assert torch.equal(f[:, :6], colour_moments(x)) and torch.equal(f[:, 6:774], x.flatten(1))
    assert extract(x, spec=FeatureSpec(["hog"], cell=4)).shape == (3, 9 * 36)
    with pytest.raises(ConfigError, match="choose from"):
        extract(x, FeatureSpec(["sift"]))


def test_standardiser_uses_train_statistics_only():
    train = torch.tensor([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    test = torch.tensor([[100.0, 7.0]])
    s = Standardiser.fit(train)
    assert torch.allclose(s.mean, torch.tensor([2.0, 5.0]))
    assert torch.allclose(s(train)[:, 0], torch.tensor([-1.0, 0.0, 1.0]) * 1.5 ** 0.5)
    assert s(train)[:, 1].abs().max() == 0           # constant dimension -> 0, no division by zero
    assert torch.allclose(s(test), torch.tensor([[98 / (8 / 3) ** 0.5, 2.0]]))  # test does not move the stats


def test_sobel_image_is_a_picture():
    pic = sobel_image(torch.rand(6, 3, 20, 24), max_images=3, pad=2)
    assert pic.shape == (3, 3 * 24, 4 * 28)
    assert pic.min() >= 0 and pic.max() <= 1


def test_sobel_vs_lenet_script_writes_pngs_and_tensorboard(tmp_path):
    from cnnlab.checkpoint import save_checkpoint
    from conftest import load_script

    module = load_script("sobel_vs_lenet")
    weights = {"features.0.weight": torch.randn(6, 1, 5, 5), "features.0.bias": torch.zeros(6),
               "classifier.weight": torch.randn(10, 84)}
    save_checkpoint({"model": weights, "epoch": 3, "step": 30}, tmp_path / "best.pt")
    assert module.main(["--ckpt", str(tmp_path / "best.pt"), "--out", str(tmp_path / "png"),
                        "--tb-dir", str(tmp_path / "tb")]) == 0
    names = sorted(p.name for p in (tmp_path / "png").glob("*.png"))
    assert names == ["lenet_filters.png", "lenet_responses.png", "sobel_responses.png", "sobel_vs_lenet.png"]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    # responses are signed around mid-grey: the Sobel d/dx mask as a "learned" filter answers a vertical edge
    # with light (> 0.5) on the edge and mid-grey (0) on the flat parts, as sobel() does
    mask = torch.tensor(SOBEL_X).view(1, 1, 3, 3)
    resp = module.response_image(step_image(8, 8, at=4), mask, pad=0)  # [3, 8, 2*8]: image | response
    assert torch.equal(resp[0, :, :8], step_image(8, 8, at=4)[0, 0])
    assert torch.allclose(resp[0, 2:6, 8 + 3:8 + 5], torch.ones(4, 2)) and resp[0, 4, 8 + 1] == 0.5
