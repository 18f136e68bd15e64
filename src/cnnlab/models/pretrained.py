"""Weights others trained: torchvision's weights API (its download, cache and hash check: Paszke et al.,
torchvision.models), or a state-dict file; the checks that they fit, and the greyscale stem."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError, first_line

log = logging.getLogger("cnnlab")


def weights_enum(arch: str, name: str, key: str) -> Any:
    """torchvision's weights `name` (or DEFAULT) for `arch`; an unknown name lists the valid ones."""
    from torchvision import models

    try:
        enum = models.get_model_weights(arch)
    except ValueError:
        raise ConfigError(f"{key}={name}: torchvision has no weights for {arch}") from None
    names = [w.name for w in enum]
    if name not in names + ["DEFAULT"]:
        raise ConfigError(f"{key}={name} is not a weights name torchvision has for {arch}: use DEFAULT or one of "
                          f"{', '.join(names)} (or a path to a state-dict file)")
    return enum.DEFAULT if name == "DEFAULT" else enum[name]


def is_path(source: str) -> bool:
    """Whether a weights option names a file (a path) rather than a torchvision weights name."""
    return "/" in source or source.endswith((".pt", ".pth")) or Path(source).expanduser().is_file()


def read_state(source: str, key: str) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a file (torch.load weights_only; a cnnlab checkpoint's `model` entry too)."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}={source}: no such file; give a state-dict file (torch.save(model.state_dict()))"
                          f" or a torchvision weights name such as DEFAULT")
    why = ""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read means a foreign, damaged or pickling file
        state = None
        why = f" ({first_line(e)})" if isinstance(e, pickle.UnpicklingError) else " (torch.load cannot read it)"
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{key}={source} is not a state dict of tensors{why}: save one with "
                          f"torch.save(model.state_dict(), path)")
    return state


def pretrained_state(arch: str, source: str, key: str) -> dict[str, torch.Tensor]:
    """The weights `source` names for torchvision's `arch`: a file path, or a weights name torchvision downloads."""
    if is_path(source):
        return read_state(source, key)
    weights = weights_enum(arch, source, key)
    log.info(f"{key}={source}: torchvision's {weights} for {arch} (downloaded once into the torch hub cache)")
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as e:  # no network, a proxy, a failed hash check of the download
        raise ConfigError(f"{key}={source}: torchvision's download of {weights.url} failed ({first_line(e)}): "
                          f"run once with internet (the file stays in the torch hub cache), or give a state-dict "
                          f"file, or {key}=null to train from scratch") from None


def input_meta(arch: str, source: Optional[str]) -> dict[str, Any]:
    """The normalisation and crop size torchvision's weights `source` were trained with ({} for a file)."""
    if not source or is_path(source):
        return {}
    t = weights_enum(arch, source, "model.weights").transforms()
    return {"mean": list(t.mean), "std": list(t.std), "image_size": int(t.crop_size[0])}


def grey_stem(state: dict[str, torch.Tensor], stem: str, in_channels: int, key: str) -> dict[str, torch.Tensor]:
    """`state` with its first convolution `stem` (a weight name) made for `in_channels` (3: as is; 1: summed)."""
    if in_channels == 3:
        return state
    if in_channels != 1:
        raise ConfigError(f"{key}: pretrained weights take 3 (RGB) or 1 (greyscale) input channels, the data has "
                          f"{in_channels}: drop {key} to train from scratch")
    # a grey image g seen as (g, g, g) gives sum_c w_c * g: the RGB network's response to that grey picture
    log.info(f"{key}: the pretrained stem {stem} summed over its RGB kernels for greyscale input")
    return {**state, stem: state[stem].sum(dim=1, keepdim=True)}


def load_fitting(module: nn.Module, state: dict[str, torch.Tensor], key: str, source: str,
                 skip: str = "") -> None:
    """Load every tensor of `module` from `state` (those under `skip`, a new head, only where they fit)."""
    own = module.state_dict()  # a missing, mismatched or extra tensor is a ConfigError naming the shapes
    for name, value in own.items():
        if skip and name.startswith(skip + "."):
            continue
        if name not in state:
            raise ConfigError(f"{key}={source} does not fit: it has no {name} ({list(value.shape)} here): give "
                              f"weights of the same architecture")
        if tuple(state[name].shape) != tuple(value.shape):
            raise ConfigError(f"{key}={source} does not fit: {name} is {list(state[name].shape)} there but "
                              f"{list(value.shape)} here: give weights of the same architecture")
    children = dict(module.named_children())
    extra = [k for k in state if k not in own and k.split(".")[0] in children]  # not a part left out (a head)
    if extra:
        raise ConfigError(f"{key}={source} does not fit: it has {extra[0]} {list(state[extra[0]].shape)}, which this "
                          f"model lacks: give weights of the same architecture")
    fits = {k: state[k] for k in own if k in state and tuple(state[k].shape) == tuple(own[k].shape)}
    module.load_state_dict(fits, strict=False)
    head = set(module.get_submodule(skip).modules()) if skip else set()
    for m in module.modules():  # loaded layers keep their weights under init= (init_weights)
        m.keeps_init = m not in head

