"""LeNet-5. LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition", Proc. IEEE
86(11), 1998. `LeNet5Classic` as published (scaled tanh, trainable subsampling, Table I's C3, RBF outputs trained
with `RBFLoss`); `LeNet5` the modern form: ReLU, max-pooling, cross-entropy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

# Table I of the paper: which S2 maps (rows 0-5) feed each C3 map (columns 0-15).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)

# F6 prototypes: stylised 7-wide x 12-high digit bitmaps ('#' = +1, '.' = -1), as in the paper's Fig. 3.
_BITMAPS = {
    0: "..###.. .#...#. #.....# #.....# #.....# #.....# #.....# #.....# #.....# .#...#. ..###.. .......",
    1: "...#... ..##... .#.#... ...#... ...#... ...#... ...#... ...#... ...#... ...#... .#####. .......",
    2: ".#####. #.....# ......# ......# .....#. ....#.. ...#... ..#.... .#..... #...... ####### .......",
    3: ".#####. #.....# ......# ......# ..####. ......# ......# ......# ......# #.....# .#####. .......",
    4: "....#.. ...##.. ..#.#.. .#..#.. #...#.. ####### ....#.. ....#.. ....#.. ....#.. ...###. .......",
    5: "####### #...... #...... #...... ######. ......# ......# ......# ......# #.....# .#####. .......",
    6: "..####. .#..... #...... #...... ######. #.....# #.....# #.....# #.....# #.....# .#####. .......",
    7: "####### ......# .....#. .....#. ....#.. ....#.. ...#... ...#... ..#.... ..#.... ..#.... .......",
    8: ".#####. #.....# #.....# #.....# .#####. #.....# #.....# #.....# #.....# #.....# .#####. .......",
    9: ".#####. #.....# #.....# #.....# #.....# .###### ......# ......# ......# .....#. .####.. .......",
}


def rbf_prototypes(num_classes: int, seed: int = 0) -> Tensor:
    """[num_classes, 84] fixed +-1 codes: digit bitmaps for the first ten classes, seeded random codes beyond."""
    rows = [[1.0 if ch == "#" else -1.0 for ch in _BITMAPS[c].replace(" ", "")] for c in range(min(num_classes, 10))]
    codes = torch.tensor(rows).reshape(-1, 84)
    if num_classes > 10:
        gen = torch.Generator().manual_seed(seed)
        extra = torch.randint(0, 2, (num_classes - 10, 84), generator=gen).float() * 2 - 1
        codes = torch.cat([codes, extra])
    return codes


def scaled_tanh(a: Tensor) -> Tensor:
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (its Appendix A)."""
    return 1.7159 * torch.tanh(a * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2/S4: sum of each 2x2 block times one trainable coefficient per map, plus one bias per map."""

    def __init__(self, maps: int) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.full((maps,), 0.25))
        self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.avg_pool2d(x, 2) * 4.0  # the 2x2 sum
        return pooled * self.coef.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SparseConv(nn.Conv2d):
    """C3: a 5x5 convolution in which each output map sees only the input maps listed in `table`."""

    def __init__(self, in_maps: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__(in_maps, len(table), kernel_size)
        mask = torch.zeros(len(table), in_maps, 1, 1)
        for out, ins in enumerate(table):
            mask[out, list(ins)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)

    def effective_parameters(self) -> int:
        """Trainable weights that are actually connected (the paper counts 1,516 for C3)."""
        return int(self.mask.sum().item()) * self.kernel_size[0] * self.kernel_size[1] + self.out_channels


def _check_input(x: Tensor, in_channels: int, model: str) -> None:
    """ConfigError with the fix unless `x` is [N, in_channels, 32, 32]."""
    if x.dim() != 4 or x.shape[1] != in_channels or tuple(x.shape[-2:]) != (32, 32):
        raise ConfigError(
            f"model={model} expects [N,{in_channels},32,32] inputs, got {list(x.shape)}: "
            f"pad 28x28 digits with data.pad=2, or choose a model that matches the data (e.g. model=alexnet_small)")


class RBFLoss(nn.Module):
    """The paper's Eq. (8): mean penalty of the correct class's RBF unit (squared error to its prototype)."""

    needs_model = "LeNet5Classic"  # other models' logits are not penalties: run.build_loss refuses them

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return -logits.gather(1, target.unsqueeze(1)).mean()


class LeNet5Classic(nn.Module):
    """LeNet-5 as published: 32x32 input, C1 6@28x28, S2, C3 16@10x10, S4, C5 120, F6 84, RBF output."""

    criterion = RBFLoss  # what loss=auto trains it with

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.c1 = nn.Conv2d(in_channels, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = SparseConv(6, C3_TABLE)
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.register_buffer("prototypes", rbf_prototypes(num_classes))

    def check_input(self, x: Tensor) -> None:
        """ConfigError with the fix unless `x` is [N, in_channels, 32, 32] (run.check_compatible calls it)."""
        _check_input(x, self.in_channels, "lenet5_classic")

    def features(self, x: Tensor) -> Tensor:
        """F6 activations [N, 84]."""
        x = scaled_tanh(self.s2(self.c1(x)))
        x = scaled_tanh(self.s4(self.c3(x)))
        x = scaled_tanh(self.c5(x)).flatten(1)
        return scaled_tanh(self.f6(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits = minus the RBF penalties y_i = sum_j (x_j - w_ij)^2, so argmax picks the closest prototype."""
        return -torch.cdist(self.features(x), self.prototypes).pow(2)


class LeNet5(nn.Module):
    """LeNet-5 with modern parts: ReLU, 2x2 max-pooling, a linear output for cross-entropy."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: tuple[int, int] = (6, 16),
                 hidden: tuple[int, int] = (120, 84), dropout: float = 0.0) -> None:
        super().__init__()
        if len(channels) != 2 or len(hidden) != 2:
            raise ConfigError(f"model.channels={list(channels)}, model.hidden={list(hidden)}: LeNet-5 takes two of "
                              f"each (C1 and C3 maps, F5 and F6 units), e.g. [6,16] and [120,84]")
        c1, c3 = channels
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),   # C1 -> 28x28, S2 -> 14x14
            nn.Conv2d(c1, c3, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),            # C3 -> 10x10, S4 -> 5x5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * 25, hidden[0]), nn.ReLU(inplace=True), nn.Dropout(dropout),  # C5
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(inplace=True), nn.Dropout(dropout),              # F6
            nn.Linear(hidden[1], num_classes),
        )

    def check_input(self, x: Tensor) -> None:
        """ConfigError with the fix unless `x` is [N, in_channels, 32, 32] (run.check_compatible calls it)."""
        _check_input(x, self.in_channels, "lenet5")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
