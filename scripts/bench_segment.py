"""Prediction throughput (megapixels/s) of one segmentation network used two ways, in one run:
(a) fully convolutional: whole images in, one logit map out;
(b) the pre-FCN way: a window of `patch + 2*context` pixels around every 16x16 patch goes through the SAME network
    and only the centre patch's logits are kept, painted back into the image.
Both give a prediction for every pixel; (b) recomputes the shared context of neighbouring windows, which is the
redundancy Long et al. 2015 (section 3.1) remove. Prints both rates, their ratio, and how often the two agree.

    PYTHONPATH=src python scripts/bench_segment.py                        # U-Net (model=unet defaults), 400x400
    PYTHONPATH=src python scripts/bench_segment.py --model fcn --size 608 --context 40
    PYTHONPATH=src python scripts/bench_segment.py --ckpt outputs/.../best.pt    # a trained network (random input)
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch import Tensor, nn

from cnnlab.data.patches import patchify
from cnnlab.models.fcn import FCN
from cnnlab.models.unet import UNet


def timed(fn: Callable[[], Tensor], repeats: int) -> "tuple[Tensor, float]":
    """The result of fn() and its best wall time over `repeats` runs (after one warm-up)."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


@torch.no_grad()
def whole_image(net: nn.Module, x: Tensor) -> Tensor:
    """Logits [N,K,H,W] of whole images, one image per call (as a user predicts)."""
    return torch.cat([net(x[i:i + 1]) for i in range(len(x))])


@torch.no_grad()
def sliding_window(net: nn.Module, x: Tensor, patch: int, context: int, batch: int) -> Tensor:
    """Logits [N,K,H,W] assembled from the centre patch of a context window around each patch."""
    n, _, h, w = x.shape
    windows = patchify(x, patch, context)  # [N*gh*gw, C, p+2c, p+2c], edge pixels repeated at the border
    centres = torch.cat([net(windows[i:i + batch])[:, :, context:context + patch, context:context + patch]
                         for i in range(0, len(windows), batch)])
    k, gh, gw = centres.shape[1], h // patch, w // patch
    grid = centres.view(n, gh, gw, k, patch, patch).permute(0, 3, 1, 4, 2, 5)  # [N,K,gh,p,gw,p]
    return grid.reshape(n, k, h, w)


def build_net(args: argparse.Namespace, channels: int) -> nn.Module:
    """The network to time: a checkpoint's, or a fresh U-Net / FCN of the given size."""
    if args.ckpt:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        from cnnlab.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.ckpt)
        cfg = OmegaConf.create(ckpt["config"])
        net = instantiate(cfg.model, num_classes=int(cfg.data.get("num_classes", 2)), in_channels=channels)
        net.load_state_dict(ckpt["model"])
        return net.eval()
    if args.model == "fcn":
        return FCN(2, channels).eval()
    return UNet(2, channels, base=args.base, depth=args.depth, downsample=args.downsample).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["unet", "fcn"], default="unet")
    p.add_argument("--base", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--downsample", type=int, default=1)
    p.add_argument("--ckpt", default=None, help="time this checkpoint's network instead")
    p.add_argument("--size", type=int, default=400, help="image side in pixels (a multiple of --patch)")
    p.add_argument("--num-images", type=int, default=2)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--context", type=int, default=24, help="pixels of context on each side of a patch")
    p.add_argument("--batch", type=int, default=128, help="windows per forward pass in (b)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_net(args, args.channels)
    x = torch.randn(args.num_images, args.channels, args.size, args.size)
    mpix = x.shape[0] * x.shape[2] * x.shape[3] / 1e6
    full, t_full = timed(lambda: whole_image(net, x), args.repeats)
    slid, t_slid = timed(lambda: sliding_window(net, x, args.patch, args.context, args.batch), args.repeats)
    agree = (full.argmax(1) == slid.argmax(1)).float().mean().item()
    window = args.patch + 2 * args.context
    print(f"{type(net).__name__}, {args.num_images} images of {args.size}x{args.size}, {args.threads} threads")
    print(f"whole image:     {mpix / t_full:8.3f} MP/s  ({t_full:.2f} s)")
    print(f"sliding window:  {mpix / t_slid:8.3f} MP/s  ({t_slid:.2f} s; {window}x{window} window per "
          f"{args.patch}x{args.patch} patch)")
    print(f"ratio:           {t_slid / t_full:8.1f}x  (goal >= 10x); pixel labels agree: {agree:.3f}")


if __name__ == "__main__":
    main()
