"""U-Net and FCN: output size for any input size, hand-computed parameter counts, FCN variants, bilinear init."""
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError
from cnnlab.models.fcn import FCN, bilinear_upsampler
from cnnlab.models.init import init_weights
from cnnlab.models.unet import UNet

SIZES = [(400, 400), (608, 608), (768, 1024), (37, 53), (5, 7)]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("make", [
    lambda: UNet(3, in_channels=3, base=2, depth=4),
    lambda: UNet(3, in_channels=3, base=2, depth=3, up="bilinear", downsample=2),
    lambda: FCN(3, in_channels=3, widths=(2, 2, 4, 4, 4), convs=(1, 1, 1, 1, 1), fc_width=4, variant="8s"),
    lambda: FCN(3, in_channels=3, widths=(2, 4, 4), convs=(1, 1, 1), fc_width=4, variant="4s", downsample=2),
])
def test_output_has_the_input_size(make):
    model = make().eval()
    with torch.no_grad():
        for h, w in SIZES:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize("make, stride", [
    (lambda: UNet(3, in_channels=3, base=2, depth=4), 16),
    (lambda: FCN(3, in_channels=3, widths=(2, 2, 4, 4, 4), convs=(1, 1, 1, 1, 1), fc_width=4, variant="8s"), 32),
])
def test_an_odd_size_is_padded_at_the_bottom_right_and_cropped_back_on_the_same_pixels(make, stride):
    # the output must be the prediction for each input pixel, not a window shifted by the padding: the reference
    # pads by hand with torch (reflect, or replicate where the pad is not smaller than the side) and keeps [:h, :w]
    model = make().eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for h, w in ((37, 53), (5, 7)):
            x = torch.randn(1, 3, h, w)
            ph, pw = -h % stride, -w % stride
            mode = "reflect" if ph < h and pw < w else "replicate"
            ref = model(F.pad(x, (0, pw, 0, ph), mode=mode))[..., :h, :w]
            assert torch.allclose(model(x), ref, atol=1e-5), (h, w)


def test_unet_parameters_by_hand():
    # base 2, depth 1, 1 channel in, 2 classes, no norm: 3x3 convs have 9*cin*cout weights + cout biases
    enc = (9 * 1 * 2 + 2) + (9 * 2 * 2 + 2) + (9 * 2 * 4 + 4) + (9 * 4 * 4 + 4)
    dec = (4 * 4 * 2 + 2) + (9 * 4 * 2 + 2) + (9 * 2 * 2 + 2)  # 2x2 up-conv 4->2, then convs on the 2+2 concat
    head = 2 * 2 + 2
    assert n_params(UNet(2, in_channels=1, base=2, depth=1, norm="none")) == enc + dec + head == 434
    # batch norm: convs lose their biases (12 values) and each of the 6 BN layers adds a scale and shift per map
    bn = 2 * (2 + 2 + 4 + 4 + 2 + 2)
    assert n_params(UNet(2, in_channels=1, base=2, depth=1, norm="bn")) == 434 - (2 + 2 + 4 + 4 + 2 + 2) + bn
    # the paper's configuration (figure 1) with padded convs
    assert n_params(UNet(2, in_channels=1, base=64, depth=4, norm="none")) == 31_030_658


def test_fcn_parameters_by_hand():
    # two stages (2 and 4 maps, one conv each), fc 1x1 of width 4, 2 classes
    trunk = (9 * 1 * 2 + 2) + (9 * 2 * 4 + 4) + (4 * 4 + 4) * 2 + (4 * 2 + 2)
    kw = dict(in_channels=1, widths=(2, 4), convs=(1, 1), fc_width=4, fc_kernel=1)
    # 4s: one transposed conv 2->2 classes with an 8x8 kernel (stride 4), no bias
    assert n_params(FCN(2, variant="4s", **kw)) == trunk + 2 * 2 * 8 * 8 == 402
    # 2s: + skip score from the stage-0 pool (2 maps -> 2 classes), + a 2x up-sampler (4x4), final 2x (4x4)
    assert n_params(FCN(2, variant="2s", **kw)) == trunk + (2 * 2 + 2) + 2 * 2 * 4 * 4 * 2 == 280


def test_fcn_variants_fuse_the_paper_skips():
    kw = dict(widths=(4, 4, 8, 8, 8), convs=(1, 1, 1, 1, 1), fc_width=8)
    nets = {v: FCN(2, variant=v, **kw) for v in ("32s", "16s", "8s")}
    assert [nets[v].skip_stages for v in nets] == [[], [3], [3, 2]]  # pool4 (stride 16), pool3 (stride 8)
    seen = {}
    for v, net in nets.items():
        net.final_up.register_forward_hook(lambda m, i, o, v=v: seen.__setitem__(v, i[0].shape[-1]))
        net.eval()(torch.randn(1, 3, 64, 96))
    assert seen == {"32s": 96 // 32, "16s": 96 // 16, "8s": 96 // 8}  # the stride before the last up-sampling
    # 16s adds a pool4 score (8 maps -> 2) and a 2x up-sampler, and swaps the 64x64 final kernel for a 32x32 one
    extra = (8 * 2 + 2) + 2 * 2 * 4 * 4 + 2 * 2 * (32 * 32 - 64 * 64)
    assert n_params(nets["16s"]) - n_params(nets["32s"]) == extra
    with pytest.raises(ConfigError, match="model.variant"):
        FCN(2, variant="12s", **kw)
    with pytest.raises(ConfigError, match="model.variant"):
        FCN(2, variant="64s", **kw)


def test_fcn_skips_start_at_zero_so_finer_variants_start_coarse():
    net = FCN(2, variant="8s", widths=(4, 4, 8, 8, 8), convs=(1, 1, 1, 1, 1), fc_width=8).eval()
    x = torch.randn(1, 3, 64, 64)
    base = net(x)
    with torch.no_grad():
        net.skip_scores[1].weight.normal_()  # the pool3 score now adds stride-8 detail
    assert not torch.allclose(net(x), base)
    init_weights(net, "kaiming")  # re-initialising the convs leaves the paper's start alone
    assert net.skip_scores[0].weight.abs().sum() == 0 and net.skip_ups[0].weight[0, 1].abs().sum() == 0


@pytest.mark.parametrize("factor", [2, 4, 8, 32])
def test_bilinear_upsampler_reproduces_bilinear_interpolation(factor):
    up = bilinear_upsampler(2, factor)
    ramp = torch.arange(6, dtype=torch.float32)
    x = torch.stack([ramp.view(1, 6).expand(5, 6), torch.full((5, 6), 3.0)]).unsqueeze(0)  # [1,2,5,6]
    with torch.no_grad():
        y = up(x)
    assert y.shape == (1, 2, 5 * factor, 6 * factor)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    inner = (slice(None), slice(None), slice(factor, -factor), slice(factor, -factor))
    assert torch.allclose(y[inner], ref[inner], atol=1e-5)        # the ramp and the constant, exactly
    assert torch.allclose(y[0, 1][inner[2:]], torch.tensor(3.0))  # channels do not mix


def test_multiclass_logits_and_bad_settings():
    x = torch.randn(2, 1, 40, 24)
    assert UNet(5, in_channels=1, base=2, depth=2).eval()(x).shape == (2, 5, 40, 24)
    assert FCN(5, in_channels=1, widths=(2, 2, 2), convs=(1, 1, 1), fc_width=4, variant="8s")(x).shape == \
        (2, 5, 40, 24)
    with pytest.raises(ConfigError, match="model.norm"):
        UNet(2, norm="lrn")
    with pytest.raises(ConfigError, match="in_channels"):
        UNet(2, in_channels=3).check_input(x)


def test_a_unet_too_large_for_the_machine_is_refused_before_it_is_built(monkeypatch):
    from cnnlab import device
    from cnnlab.models import unet

    asked = []
    monkeypatch.setattr(unet, "check_model_fits", lambda n, settings: asked.append(n))
    model = unet.UNet(2, 3, base=8, depth=3, up="transpose")
    kernels = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 4 and not n.startswith("head"))
    assert asked == [kernels]  # the count made before building is the built network's 3x3 and 2x2 kernels
    monkeypatch.undo()
    monkeypatch.setattr(device, "available_memory", lambda: 2**30)  # a machine with 1 GiB free
    with pytest.raises(ConfigError, match=r"^model.depth=9 and model.base=24 make a model of 4,480M weights, which "
                                          r"needs about 66.7 GiB to train, and this machine has 1.0 GiB free"):
        unet.UNet(2, 3, base=24, depth=9)
