"""A model class with a planted bug, for the test that a bug in a constructor shows its traceback."""
from torch import nn


class PlantedBug(nn.Module):
    """Its constructor fails the way a bug does (not a user error)."""

    def __init__(self, num_classes: int, in_channels: int = 1, **kwargs) -> None:
        super().__init__()
        raise RuntimeError(f"planted bug: {num_classes} classes")
