"""A layer's features: per channel the input patches that activate it most (Zeiler & Fergus, "Visualizing and
Understanding Convolutional Networks", ECCV 2014), and inputs optimised to excite it (activation maximisation: Erhan
et al. 2009, Simonyan et al. 2014)."""
from __future__ import annotations

import logging
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from . import draw

log = logging.getLogger("cnnlab")

TILE = 64  # pixels per drawn patch


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called `name` (as in `model.named_modules()`), or a one-line error listing the conv layers."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        convs = [n for n, m in modules.items() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
        raise ConfigError(f"layer={name} is not a layer of {type(model).__name__}: its conv layers are "
                          f"{', '.join(convs) or 'none'} (any name of model.named_modules() works)")
    return modules[name]


class _Capture:
    """A forward hook that keeps the layer's output."""

    def __init__(self, layer: nn.Module) -> None:
        self.out: Tensor = torch.empty(0)
        self.remove = layer.register_forward_hook(self._hook).remove

    def _hook(self, module: nn.Module, args: tuple, out: Tensor) -> None:  # noqa: ARG002 (hook signature)
        self.out = out


@torch.no_grad()
def top_activations(model: nn.Module, layer: nn.Module, batches: Iterable[Tensor], k: int,
                    device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Per channel, one batch at a time, the k strongest activations: (values, input index, flat position), [C,k]."""
    model.eval()
    cap = _Capture(layer)
    best = None
    seen = 0
    try:
        for x in batches:
            model(x.to(device))
            act = cap.out.float().flatten(2) if cap.out.dim() > 2 else cap.out.float().unsqueeze(2)  # [N,C,P]
            peak, pos = act.max(2)  # [N,C]
            idx = torch.arange(seen, seen + len(x), device=peak.device).expand(peak.shape[1], -1)
            cand = (peak.T, idx, pos.T)  # each [C,N]
            if best is not None:
                cand = tuple(torch.cat([a, b], 1) for a, b in zip(best, cand))
            order = cand[0].topk(min(k, cand[0].shape[1]), dim=1).indices
            best = tuple(t.gather(1, order) for t in cand)
            seen += len(x)
    finally:
        cap.remove()
    return tuple(t.cpu() for t in best)


def receptive_box(model: nn.Module, layer: nn.Module, x: Tensor, channel: int, pos: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the region of x [1,C,H,W] that changes `layer`'s `channel` at flat `pos`."""
    # the support of the activation's gradient with respect to the input: its effective receptive field
    cap = _Capture(layer)
    try:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            model(x)
            act = cap.out.flatten(2) if cap.out.dim() > 2 else cap.out.unsqueeze(2)
            (grad,) = torch.autograd.grad(act[0, channel, pos], x)
    finally:
        cap.remove()
    rows, cols = grad[0].abs().sum(0).nonzero(as_tuple=True)
    if len(rows) == 0:
        return 0, 0, x.shape[-2], x.shape[-1]
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def _shown(channels: int, total: int, layer_name: str) -> int:
    """How many channels a figure shows: `channels`, or all of the layer's when it has fewer (said in the log)."""
    if channels > total:
        log.info(f"layer {layer_name} has {total} channels: showing all {total} (channels={channels})")
    return min(channels, total)


def patches_figure(model: nn.Module, layer_name: str, inputs: Tensor, mean: Sequence[float], std: Sequence[float],
                   device: torch.device, k: int = 8, channels: int = 16, batch: int = 256) -> Tensor:
    """Rows = channels (the first `channels`), columns = the k input patches that activate them most."""
    layer = find_layer(model, layer_name)
    if inputs.dim() != 4:
        raise ConfigError("layer pictures need image inputs [N,C,H,W]")
    values, index, pos = top_activations(model, layer, inputs.split(batch), k, device)
    tiles, captions = [], []
    shown = _shown(channels, values.shape[0], layer_name)
    for c in range(shown):
        for j in range(values.shape[1]):
            x = inputs[int(index[c, j])][None].to(device)
            top, left, bottom, right = receptive_box(model.eval(), layer, x, c, int(pos[c, j]))
            patch = draw.rgb(draw.denormalise(x[0, :, top:bottom, left:right].float().cpu(), mean, std))
            tiles.append(F.interpolate(patch[None], size=(TILE, TILE), mode="nearest")[0])
            captions.append(f"ch {c}: {float(values[c, j]):.2g}")
    return draw.figure(torch.stack(tiles), captions, values.shape[1],
                       f"layer {layer_name}: the {values.shape[1]} input patches that activate each channel most "
                       f"(rows: channels 0-{shown - 1}; {len(inputs)} images)")


def maximise_channel(model: nn.Module, layer: nn.Module, channel: int, shape: Sequence[int],
                     device: torch.device, steps: int = 128, lr: float = 0.1, l2: float = 1e-3) -> Tensor:
    """An input [C,H,W] (normalised units) maximising the channel's mean activation minus l2 * ||x||^2."""
    # gradient ascent from small noise, the gradient scaled to unit std; a 3x3 blur every 4 steps is a smoothness
    # prior (without one the optimum is high-frequency noise)
    gen = torch.Generator().manual_seed(channel)
    x = (0.01 * torch.randn(1, *shape, generator=gen)).to(device)
    blur = torch.full((shape[0], 1, 3, 3), 1 / 9, device=device)
    cap = _Capture(layer)
    model.eval()
    try:
        for step in range(steps):
            x.requires_grad_(True)
            with torch.enable_grad():
                model(x)
                objective = cap.out[0, channel].mean() - l2 * x.pow(2).sum()
                (grad,) = torch.autograd.grad(objective, x)
            with torch.no_grad():
                x = x + lr * grad / grad.std().clamp_min(1e-12)
                if step % 4 == 3:
                    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), blur, groups=shape[0])
    finally:
        cap.remove()
    return x.detach()[0].cpu()


def maximised_figure(model: nn.Module, layer_name: str, shape: Sequence[int], device: torch.device,
                     channels: int = 16) -> Tensor:
    """One optimised input per channel (each min-max scaled for display)."""
    layer = find_layer(model, layer_name)
    total = len(top_activations(model, layer, [torch.zeros(1, *shape)], 1, device)[0])  # the layer's channels
    imgs = [maximise_channel(model, layer, c, shape, device) for c in range(_shown(channels, total, layer_name))]
    tiles = torch.stack([draw.rgb(draw.denormalise(x, (), ())) for x in imgs])
    tiles = F.interpolate(tiles, size=(max(TILE, shape[-2]), max(TILE, shape[-1])), mode="nearest")
    return draw.figure(tiles, [f"ch {c}" for c in range(len(imgs))], 8,
                       f"layer {layer_name}: inputs optimised to excite each channel (128 gradient-ascent steps, "
                       "blur, l2)")
