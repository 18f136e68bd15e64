"""Weight initialisation schemes: Glorot & Bengio 2010 (Xavier), He et al. 2015 (Kaiming)."""
from __future__ import annotations

from torch import nn

SCHEMES = ("default", "xavier", "kaiming")


def init_weights(model: nn.Module, scheme: str = "default", nonlinearity: str = "relu") -> nn.Module:
    """Re-initialise every Conv/Linear weight by `scheme` (biases to zero); "default" keeps PyTorch's init."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}: choose one of {', '.join(SCHEMES)} (init=...)")
    if scheme == "default":
        return model
    for m in model.modules():
        if getattr(m, "keeps_init", False):  # FCN's bilinear up-samplers and zero skip scores, pretrained layers
            continue
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose2d)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(nonlinearity))
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
