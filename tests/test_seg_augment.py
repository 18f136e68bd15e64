"""Joint batched augmentation of images and masks: same geometry for both, windows of the 8 symmetries, seeded."""
import pytest
import torch

from cnnlab.data.segaugment import SegAugment
from cnnlab.errors import ConfigError


def _batch(n=6, h=8, w=8):
    x = torch.arange(n * 2 * h * w, dtype=torch.float32).view(n, 2, h, w)  # every pixel unique
    return x, (x[:, 0] % 251).long()                                         # mask = a function of channel 0


def _symmetries(img):
    """The 8 images of the dihedral group acting on a square [..., H, W] tensor."""
    out = []
    for t in (img, img.transpose(-1, -2)):
        out += [t, t.flip(-1), t.flip(-2), t.flip(-1).flip(-2)]
    return out


def test_image_and_mask_move_together_and_stay_windows_of_a_symmetry():
    x, y = _batch()
    aug = SegAugment(crop=5)
    xo, yo = aug(x, y, torch.Generator().manual_seed(0))
    assert xo.shape == (6, 2, 5, 5) and yo.shape == (6, 5, 5) and yo.dtype == torch.long
    assert torch.equal(yo, (xo[:, 0] % 251).long())  # the mask went where its pixels went
    for n in range(6):
        windows = [s[:, r:r + 5, c:c + 5] for s in _symmetries(x[n]) for r in range(4) for c in range(4)]
        assert any(torch.equal(xo[n], win) for win in windows)


def test_all_eight_orientations_occur_and_seed_decides():
    x, y = _batch(n=200, h=4, w=4)
    xo, _ = SegAugment()(x, y, torch.Generator().manual_seed(1))
    found = {next(k for k, s in enumerate(_symmetries(x[n])) if torch.equal(xo[n], s)) for n in range(200)}
    assert found == set(range(8))
    again, _ = SegAugment()(x, y, torch.Generator().manual_seed(1))
    other, _ = SegAugment()(x, y, torch.Generator().manual_seed(2))
    assert torch.equal(again, xo) and not torch.equal(other, xo)


def test_no_flips_no_turns_is_a_plain_crop():
    x, y = _batch()
    xo, yo = SegAugment(crop=3, hflip=False, vflip=False, rot90=False)(x, y, torch.Generator().manual_seed(0))
    for n in range(6):
        assert any(torch.equal(xo[n], x[n, :, r:r + 3, c:c + 3]) for r in range(6) for c in range(6))


def test_brightness_contrast_change_images_only():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 6, 6, generator=g), torch.randint(0, 2, (64, 6, 6), generator=g)
    aug = SegAugment(hflip=False, vflip=False, rot90=False, brightness=0.2, contrast=0.3)
    xo, yo = aug(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(yo, y)
    shift = xo.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    scale = (xo - xo.mean(dim=(1, 2, 3), keepdim=True)).std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.2 + 1e-5 and shift.abs().max() > 0.1
    assert (scale - 1).abs().max() <= 0.3 + 1e-5 and (scale - 1).abs().max() > 0.15


def test_settings_that_cannot_work_are_config_errors():
    x, y = _batch(h=8, w=6)
    with pytest.raises(ConfigError, match="data.augment.crop=7"):
        SegAugment(crop=7)(x, y, torch.Generator())
    with pytest.raises(ConfigError, match="rot90"):
        SegAugment(rot90=True)(x, y, torch.Generator())
    assert SegAugment(rot90=False)(x, y, torch.Generator())[0].shape == (6, 2, 8, 6)
    with pytest.raises(ConfigError, match="data.augment.contrast"):
        SegAugment(contrast=1.5)


def test_rotation_keeps_image_and_mask_aligned():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(8, 24, 24, generator=g) < 0.3).long()
    x = torch.stack([y.float(), torch.randn(8, 24, 24, generator=g)], 1)
    xo, yo = SegAugment(crop=12, angle=45)(x, y, torch.Generator().manual_seed(3))
    assert xo.shape == (8, 2, 12, 12) and yo.shape == (8, 12, 12)
    pure = (xo[:, 0] == 0) | (xo[:, 0] == 1)  # bilinear reads inside a uniform area: the mask must agree there
    assert pure.float().mean() > 0.2 and torch.equal(yo[pure], xo[:, 0][pure].long())
    turned = [any(torch.equal(xo[n, 1], s[r:r + 12, c:c + 12]) for s in _symmetries(x[n, 1])
                  for r in range(13) for c in range(13)) for n in range(8)]
    assert not all(turned)  # some crops are turned by angles that are not multiples of 90 degrees


def test_zero_angle_rotation_is_an_exact_crop():
    x, y = _batch()
    xo, yo = SegAugment(crop=5, angle=1e-6, hflip=False, vflip=False, rot90=False)(
        x, y, torch.Generator().manual_seed(0))
    for n in range(6):
        assert any(torch.allclose(xo[n], x[n, :, r:r + 5, c:c + 5], atol=1e-3) for r in range(4) for c in range(4))
    assert torch.equal(yo, (xo[:, 0].round() % 251).long())
