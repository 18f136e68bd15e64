"""Procedural segmentation data, deterministic by seed, drawn in whole batches with tensor ops: aerial road scenes
(fields, buildings, Bezier roads, cars, trees; the mask is the road area, occluders included, as in the real ground
truth) and EM-like slices (Voronoi cells, vesicles, double-walled mitochondria; the mask is their interior)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.data.common import DataBundle
from cnnlab.data.mito import MITO_CLASSES
from cnnlab.data.options import check_count
from cnnlab.data.roads import PATCH_SIZE, PATCH_THRESHOLD, ROAD_CLASSES
from cnnlab.data.segaugment import SegAugment
from cnnlab.data.segbundle import SPLITS, seg_bundle
from cnnlab.data.splits import image_split, slice_blocks


def _uniform(gen: torch.Generator, shape: "tuple[int, ...]", lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def smooth_noise(gen: torch.Generator, n: int, c: int, h: int, w: int, cell: int) -> Tensor:
    """Noise in [0,1] varying over about `cell` pixels: coarse uniform noise up-sampled bicubically."""
    coarse = torch.rand(n, c, h // cell + 2, w // cell + 2, generator=gen)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _grid(h: int, w: int) -> "tuple[Tensor, Tensor]":
    """Pixel-centre coordinates y [1,H,W] and x [1,H,W]."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return ys.unsqueeze(0), xs.unsqueeze(0)


def _curve_distance(ctrl: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Distance [N,H,W] from each pixel to the cubic Bezier curves with control points ctrl [N,4,2] (y, x)."""
    t = torch.linspace(0, 1, 24).view(1, -1, 1)
    basis = torch.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t ** 2 * (1 - t), t ** 3], dim=2)  # [1,T,4,1]
    pts = (basis * ctrl.unsqueeze(1)).sum(2)  # [N,T,2]
    dist = torch.full((ctrl.shape[0],) + ys.shape[1:], float("inf"))
    for a, b in zip(pts[:, :-1].unbind(1), pts[:, 1:].unbind(1)):  # segment by segment, all images at once
        ay, ax, by, bx = (v.view(-1, 1, 1) for v in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
        dy, dx = by - ay, bx - ax
        u = (((ys - ay) * dy + (xs - ax) * dx) / (dy * dy + dx * dx).clamp_min(1e-6)).clamp(0, 1)
        dist = torch.minimum(dist, torch.hypot(ys - ay - u * dy, xs - ax - u * dx))
    return dist


def _border_points(gen: torch.Generator, n: int, size: int) -> Tensor:
    """Random points [N,2] on the square's border (a little outside, so roads leave the picture)."""
    side = torch.randint(0, 4, (n,), generator=gen)
    along = _uniform(gen, (n,), 0, size)
    out, far = -0.05 * size, 1.05 * size
    y = torch.where(side == 0, out, torch.where(side == 1, far, along))
    x = torch.where(side == 2, out, torch.where(side == 3, far, along))
    return torch.stack([y, x], 1)


def _boxes(gen: torch.Generator, n: int, count: int, ys: Tensor, xs: Tensor, side: "tuple[float, float]") -> Tensor:
    """Union [N,H,W] of `count` random axis-aligned rectangles per image with sides in `side` (pixels)."""
    h, w = ys.shape[1:]
    y0, x0 = _uniform(gen, (n, count, 1, 1), 0, h), _uniform(gen, (n, count, 1, 1), 0, w)
    bh, bw = _uniform(gen, (n, count, 1, 1), *side), _uniform(gen, (n, count, 1, 1), *side)
    yy, xx = ys.unsqueeze(1), xs.unsqueeze(1)
    return ((yy >= y0) & (yy < y0 + bh) & (xx >= x0) & (xx < x0 + bw)).any(1)


def _paint(img: Tensor, where: Tensor, colour: Tensor) -> Tensor:
    """img [N,3,H,W] with pixels `where` [N,H,W] set to colour [N,3] (or [N,3,H,W])."""
    return torch.where(where.unsqueeze(1), colour if colour.dim() == 4 else colour.view(-1, 3, 1, 1), img)


def road_scenes(n: int, size: int = 96, seed: int = 0) -> "tuple[Tensor, Tensor]":
    """`n` aerial-like RGB scenes uint8 [N,3,S,S] and road masks uint8 [N,S,S] (1 = road)."""
    gen = torch.Generator().manual_seed(seed)
    ys, xs = _grid(size, size)
    field = smooth_noise(gen, n, 1, size, size, max(size // 6, 2))
    grass, soil = torch.tensor([70.0, 100, 50]).view(1, 3, 1, 1), torch.tensor([150.0, 125, 90]).view(1, 3, 1, 1)
    img = grass + (soil - grass) * field + 25 * (smooth_noise(gen, n, 3, size, size, 2) - 0.5)
    roof = _uniform(gen, (n, 1), 110, 190).expand(n, 3) + _uniform(gen, (n, 3), -10, 10)
    img = _paint(img, _boxes(gen, n, 4, ys, xs, (0.06 * size, 0.16 * size)), roof)
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for r in range(3):
        ctrl = torch.stack([_border_points(gen, n, size), _uniform(gen, (n, 2), 0, size),
                            _uniform(gen, (n, 2), 0, size), _border_points(gen, n, size)], 1)
        width = _uniform(gen, (n, 1, 1), 0.03 * size, 0.09 * size)
        present = (torch.rand(n, 1, 1, generator=gen) < 0.6) | (r == 0)  # 1 to 3 roads
        road = (_curve_distance(ctrl, ys, xs) < width / 2) & present
        grey = _uniform(gen, (n, 1), 95, 150).expand(n, 3)
        img = _paint(img, road, grey.view(n, 3, 1, 1) + 12 * (smooth_noise(gen, n, 3, size, size, 1) - 0.5))
        mask |= road
    cars = _boxes(gen, n, 12, ys, xs, (0.02 * size, 0.045 * size)) & mask
    img = _paint(img, cars, _uniform(gen, (n, 3), 20, 240))
    cy, cx = _uniform(gen, (n, 10, 1, 1), 0, size), _uniform(gen, (n, 10, 1, 1), 0, size)
    rad = _uniform(gen, (n, 10, 1, 1), 0.02 * size, 0.05 * size)
    trees = ((ys.unsqueeze(1) - cy) ** 2 + (xs.unsqueeze(1) - cx) ** 2 < rad ** 2).any(1)  # 10 crowns
    img = _paint(img, trees, torch.tensor([35.0, 70, 30]).expand(n, 3) + _uniform(gen, (n, 3), -10, 10))
    img = F.avg_pool2d(img, 3, stride=1, padding=1, count_include_pad=False)  # soft edges, like a real sensor
    img = img + 6 * torch.randn(img.shape, generator=gen)
    return img.round().clamp(0, 255).to(torch.uint8), mask.to(torch.uint8)


def _bisector_distance(seeds: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Distance [N,H,W] of each pixel to the boundary of its Voronoi cell (seeds [N,P,2] as (y, x))."""
    # for the nearest seeds a and b the boundary is their bisector, at distance (d_b^2 - d_a^2) / (2 |a - b|)
    d2 = (ys.unsqueeze(1) - seeds[..., 0, None, None]) ** 2 + (xs.unsqueeze(1) - seeds[..., 1, None, None]) ** 2
    near = d2.topk(2, dim=1, largest=False)
    sa, sb = (seeds.gather(1, near.indices[:, k].flatten(1).unsqueeze(-1).expand(-1, -1, 2)) for k in (0, 1))
    gap = (sa - sb).norm(dim=-1).view_as(near.values[:, 0]).clamp_min(1e-3)
    return (near.values[:, 1] - near.values[:, 0]) / (2 * gap)


def em_slices(n: int, height: int = 96, width: int = 128, seed: int = 0) -> "tuple[Tensor, Tensor]":
    """`n` EM-like grayscale slices uint8 [N,1,H,W] and mitochondria masks uint8 [N,H,W] (1 = mitochondrion)."""
    gen = torch.Generator().manual_seed(seed)
    ys, xs = _grid(height, width)
    img = 165 + 25 * (smooth_noise(gen, n, 1, height, width, 12)[:, 0] - 0.5)
    img = img + 30 * (smooth_noise(gen, n, 1, height, width, 1)[:, 0] - 0.5)  # granular cytoplasm
    seeds = torch.stack([_uniform(gen, (n, 10), 0, height), _uniform(gen, (n, 10), 0, width)], -1)
    img = torch.where(_bisector_distance(seeds, ys, xs) < 1.0, img - 80, img)  # cell membranes, ~2 px wide
    short = float(min(height, width))
    for _ in range(6):  # vesicles: one dark wall, light inside
        cy, cx = _uniform(gen, (n, 1, 1), 0, height), _uniform(gen, (n, 1, 1), 0, width)
        rad = _uniform(gen, (n, 1, 1), 0.025 * short, 0.05 * short)
        r = torch.hypot(ys - cy, xs - cx) / rad
        img = torch.where((r > 0.75) & (r <= 1), img - 70, torch.where(r <= 0.75, img + 15, img))
    mask = torch.zeros(n, height, width, dtype=torch.bool)
    for k in range(4):  # 1 to 4 mitochondria
        cy, cx = _uniform(gen, (n, 1, 1), 0, height), _uniform(gen, (n, 1, 1), 0, width)
        a = _uniform(gen, (n, 1, 1), 0.08 * short, 0.16 * short)
        b = a * _uniform(gen, (n, 1, 1), 0.4, 0.8)
        angle, dy, dx = _uniform(gen, (n, 1, 1), 0, 3.1416), ys - cy, xs - cx
        u = dx * torch.cos(angle) + dy * torch.sin(angle)   # along the major axis
        v = -dx * torch.sin(angle) + dy * torch.cos(angle)  # along the minor axis
        r = torch.sqrt((u / a) ** 2 + (v / b) ** 2)  # the normalised elliptic radius: 1 on the outline
        present = (torch.rand(n, 1, 1, generator=gen) < 0.7) | (k == 0)
        wall = 1.5 / b  # one membrane ~1.5 px thick, in units of the normalised radius
        outer, inner = (r <= 1) & (r > 1 - wall), (r <= 1 - 2 * wall) & (r > 1 - 3 * wall)
        cristae = torch.cos(v * 2.2) > 0.6  # stripes across the matrix
        body = torch.where(outer | inner, 45.0, torch.where(cristae, 85.0, 115.0))
        img = torch.where((r <= 1) & present, body, img)
        mask |= (r <= 1) & present
    img = F.avg_pool2d(img.unsqueeze(1), 3, stride=1, padding=1, count_include_pad=False)
    img = img + 8 * torch.randn(img.shape, generator=gen)
    return img.round().clamp(0, 255).to(torch.uint8), mask.to(torch.uint8)


def build_roads_synthetic(num_images: int = 48, size: int = 96, val_fraction: float = 0.2,
                          test_fraction: float = 0.2, seed: int = 0, augment: Optional[SegAugment] = None,
                          state: Optional[dict] = None, root: Optional[str] = None) -> DataBundle:  # noqa: ARG001
    """Procedural road scenes split by image (seeded), scored as the roads task; `root` is unused."""
    check_count("num_images", num_images, minimum=3)  # one each for train, val, test at least
    check_count("size", size, minimum=PATCH_SIZE)
    images, masks = road_scenes(num_images, size, seed)
    split = image_split(num_images, val_fraction, test_fraction, seed)
    parts = {s: (images[i], masks[i]) for s, i in zip(SPLITS, split)}
    return seg_bundle(parts, ROAD_CLASSES, "roads_synthetic", augment, None, saved=state, layout="synthetic",
                      patch=PATCH_SIZE, patch_threshold=PATCH_THRESHOLD)


def build_mito_synthetic(num_slices: int = 40, height: int = 96, width: int = 128, val_fraction: float = 0.2,
                         test_fraction: float = 0.2, seed: int = 0, augment: Optional[SegAugment] = None,
                         state: Optional[dict] = None, root: Optional[str] = None) -> DataBundle:  # noqa: ARG001
    """Procedural EM slices in contiguous train/val/test blocks, as the real stack is split; `root` is unused."""
    check_count("num_slices", num_slices, minimum=3)
    check_count("height", height, minimum=16)
    check_count("width", width, minimum=16)
    images, masks = em_slices(num_slices, height, width, seed)
    blocks = slice_blocks(num_slices, val_fraction, test_fraction, has_test=False)
    parts = {s: (images[b], masks[b]) for s, b in blocks.items()}
    return seg_bundle(parts, MITO_CLASSES, "mito_synthetic", augment, None, saved=state, layout="synthetic")
