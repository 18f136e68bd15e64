"""BatchAugment: identity when off, exact mirror, padded crops, alignment of labels and masks, reproducibility."""
import torch
import torch.nn.functional as F

from cnnlab.data.augment import BatchAugment


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(n=16, c=3, h=8, w=8):
    x = torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w) + 1  # no zeros: padding is visible
    return x, torch.arange(n)


def test_identity_when_everything_off():
    x, y = batch()
    ox, oy = BatchAugment(crop_padding=0, hflip=False)(x, y, gen())
    assert torch.equal(ox, x) and torch.equal(oy, y)


def test_flip_mirrors_an_asymmetric_image_exactly():
    x = torch.zeros(64, 1, 4, 5)
    x[:, 0, 1, 0] = 1.0  # a dot on the left edge
    out, y = BatchAugment(crop_padding=0, hflip=True)(x, torch.arange(64), gen())
    flipped = out[:, 0, 1, 4] == 1.0
    assert torch.equal(out[flipped], x[flipped].flip(-1))
    assert torch.equal(out[~flipped], x[~flipped])
    assert 10 < flipped.sum() < 54  # per-sample coin, about half
    assert torch.equal(y, torch.arange(64))


def test_crop_is_a_window_of_the_zero_padded_image():
    x, y = batch(n=32)
    out, oy = BatchAugment(crop_padding=2, hflip=False)(x, y, gen(3))
    assert out.shape == x.shape and torch.equal(oy, y)
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):  # the reference: find the window by brute force
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(padded[i, :, dy:dy + 8, dx:dx + 8], out[i])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets differ per sample


def test_labels_stay_aligned_with_images():
    x = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1).expand(20, 3, 6, 6).contiguous() + 1
    y = torch.arange(20)
    out, oy = BatchAugment(crop_padding=1, hflip=True, jitter=0.0)(x, y, gen())
    centre = out[:, 0, 3, 3]  # never padding with a 1-pixel shift
    assert torch.equal(centre.long() - 1, oy)


def test_masks_get_the_same_crop_and_flip():
    x, _ = batch(n=8, c=1)
    masks = x[:, 0].long()
    out, om = BatchAugment(crop_padding=2, hflip=True, mask_fill=0)(x, masks, gen(1))
    assert torch.equal(out[:, 0].long(), om)


def test_same_seed_same_output_and_jitter_bounds():
    x, y = batch()
    aug = BatchAugment(crop_padding=4, hflip=True, jitter=0.2)
    a, _ = aug(x, y, gen(7))
    b, _ = aug(x, y, gen(7))
    c, _ = aug(x, y, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    flat = torch.randn(64, 3, 8, 8)
    j, _ = BatchAugment(crop_padding=0, hflip=False, jitter=0.2)(flat, torch.zeros(64), gen())
    shift = (j.mean((1, 2, 3)) - flat.mean((1, 2, 3))).abs()
    assert shift.max() <= 0.2 + 1e-5 and shift.max() > 0
