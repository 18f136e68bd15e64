"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks",
NIPS 2012; and AlexNetSmall, its design for 32x32 inputs."""
from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import ConfigError

from .layers import conv_relu

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0  # the paper's n, alpha, beta, k (section 3.3)


class PaperLRN(nn.Module):
    """Local response normalisation with the paper's formula, optionally within each of `groups` towers."""

    def __init__(self, groups: int = 1) -> None:
        super().__init__()
        self.groups = groups
        # the paper divides by (k + alpha * sum a^2)^beta; torch divides alpha by n, so it gets alpha * n
        self.lrn = nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return self.lrn(x.reshape(n * self.groups, c // self.groups, h, w)).reshape(n, c, h, w)


def spatial_out(layers: nn.Module, size: int) -> int:
    """Side length after the convs and max-pools in `layers` (floor arithmetic, as torch computes it)."""
    for m in layers.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
            size = (size + 2 * p - k) // s + 1
            if size < 1:
                return 0
    return size


def check_input(x: Tensor, in_channels: int, features: nn.Module, final: int, name: str, hint: str) -> None:
    """Raise ConfigError when `x` is not [N, in_channels, H, W] with H, W leading to `final` x `final` maps."""
    channels_ok = x.dim() == 4 and x.shape[1] == in_channels
    size_ok = x.dim() == 4 and spatial_out(features, x.shape[2]) == final == spatial_out(features, x.shape[3])
    if channels_ok and size_ok:
        return
    fixes = []
    if not size_ok:
        fixes.append("use model=alexnet_small for 32x32 images, or resize the data to 224x224 "
                     "(data=imagefolder data.image_size=224)" if name == "alexnet"
                     else "use model=alexnet for 224x224 images, or data.image_size=32")
    if not channels_ok and x.dim() == 4:
        fixes.append(f"the model takes {in_channels}-channel images and the data has {x.shape[1]}: "
                     f"choose RGB data, or set model.in_channels={x.shape[1]}")
    got = "x".join(str(s) for s in x.shape[1:])
    raise ConfigError(f"model={name} expects {hint} inputs, got {got}: {'; '.join(fixes)}")


def _conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups), nn.ReLU(inplace=True)]


def _classifier(widths: "tuple[int, int, int]", num_classes: int, dropout: float) -> nn.Sequential:
    """Two hidden fully connected layers, each followed by ReLU and dropout (section 4.2), then the logits."""
    return nn.Sequential(
        nn.Linear(widths[0], widths[1]), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(widths[1], widths[2]), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(widths[2], num_classes))


class AlexNet(nn.Module):
    """The paper's ImageNet network (figure 2); 1000 classes: 62,378,344 parameters (towers: 60,965,224)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                 towers: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        g = 2 if towers else 1  # the two GPUs: conv2, conv4, conv5 and LRN see their own GPU's maps, conv3 both
        pool = (lambda: nn.MaxPool2d(kernel_size=3, stride=2))  # overlapping: z=3 > s=2 (section 3.4)
        self.features = nn.Sequential(  # 55x55 needs 227, not the paper's 224: pad 2 (as torchvision) serves both
            *_conv(in_channels, 96, 11, stride=4, pad=2), PaperLRN(g), pool(),  # 224 -> 55 -> 27
            *_conv(96, 256, 5, pad=2, groups=g), PaperLRN(g), pool(),            # 27 -> 13
            *_conv(256, 384, 3, pad=1),                                           # both towers feed conv3
            *_conv(384, 384, 3, pad=1, groups=g),
            *_conv(384, 256, 3, pad=1, groups=g), pool())                         # 13 -> 6
        self.classifier = _classifier((256 * 6 * 6, 4096, 4096), num_classes, dropout)

    def check_input(self, x: Tensor) -> None:
        """ConfigError naming the config to change unless `x` is [N, in_channels, 223..254, 223..254]."""
        check_input(x, self.in_channels, self.features, 6, "alexnet", f"{self.in_channels}x224x224 (or 227)")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class AlexNetSmall(nn.Module):
    """AlexNet's design for 32x32 inputs: 5 convs, LRN (or BN), overlapping pools, two FC layers; ~2.6M params."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5,
                 norm: str = "lrn") -> None:
        super().__init__()
        if norm not in ("lrn", "bn", "none"):
            raise ConfigError(f"model.norm must be lrn, bn or none, got {norm!r}")
        self.in_channels = in_channels
        widths, bn = (64, 128, 256, 256, 128), norm == "bn"
        lrn = (lambda: PaperLRN()) if norm == "lrn" else (lambda: nn.Identity())
        pool = (lambda: nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # overlapping; 32 -> 16 -> 8 -> 4
        self.features = nn.Sequential(
            *conv_relu(in_channels, widths[0], 5, bn), lrn(), pool(),
            *conv_relu(widths[0], widths[1], 5, bn), lrn(), pool(),
            *conv_relu(widths[1], widths[2], 3, bn), *conv_relu(widths[2], widths[3], 3, bn),
            *conv_relu(widths[3], widths[4], 3, bn), pool())
        self.classifier = _classifier((widths[4] * 4 * 4, 512, 256), num_classes, dropout)

    def check_input(self, x: Tensor) -> None:
        """ConfigError naming the config to change unless `x` is [N, in_channels, 25..32, 25..32]."""
        check_input(x, self.in_channels, self.features, 4, "alexnet_small", f"{self.in_channels}x32x32")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))
