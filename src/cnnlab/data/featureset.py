"""Feature-vector datasets for the linear baseline: image bundles -> features, and segmentation data -> patch features.

Features are computed in batches on `device`, standardised with training-split statistics only, and cached on disk."""
from __future__ import annotations

import hashlib
import logging
import json
import pickle
import zipfile
from contextlib import suppress
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from cnnlab.checkpoint import save_checkpoint
from cnnlab.build import named_arguments
from cnnlab.data.common import DataBundle, TensorSplit, unnormalise
from cnnlab.data.mito import check_mito_options, read_blocks
from cnnlab.data.options import check_count, check_fraction
from cnnlab.data.patches import patch_labels, patchify
from cnnlab.data.roads import check_road_options
from cnnlab.data.segmentation import MASK_THRESHOLD, read_roads
from cnnlab.data.splits import image_split
from cnnlab.device import select_device
from cnnlab.errors import ConfigError
from cnnlab.features import FeatureSpec, Standardiser, extract
from cnnlab.tblog import Progress

log = logging.getLogger("cnnlab")

SPLITS = ("train", "val", "test")
CACHE_VERSION = 2  # bump when feature code changes the numbers (2: standardiser statistics stored too)


def _cached(cache_dir: Optional[str], name: str, key: dict, compute: Callable[[], dict]) -> dict[str, Tensor]:
    """compute() -> dict of tensors, memoised in `<cache_dir>/<name>-<hash>.pt` (no cache when cache_dir is None)."""
    # the key: dataset name, feature configuration, split sizes and a cheap fingerprint of the data
    if cache_dir is None:
        return compute()
    digest = hashlib.sha1(json.dumps({"v": CACHE_VERSION, **key}, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / f"{name}-{digest}.pt"
    if path.is_file():  # an unreadable entry (e.g. from another torch version) is recomputed and overwritten
        with suppress(RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile):
            result = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors only
            log.info(f"features read from the cache {path} ({path.stat().st_size / 2**20:.1f} MB)")
            return result
    result = compute()
    save_checkpoint(result, path)  # temp file + fsync + os.replace: never a half-written cache entry
    log.info(f"features cached in {path} ({path.stat().st_size / 2**20:.1f} MB; data.cache_dir=null turns the "
             f"cache off)")
    return result


def _fingerprint(*tensors: Tensor) -> list[float]:
    """Cheap content check for cache keys: sums and lengths (catches a different seed or subset with equal sizes)."""
    return [float(t.double().sum()) for t in tensors] + [len(t) for t in tensors]


def _standardised(raw: dict[str, Tensor], scale: Optional[Standardiser] = None) -> dict[str, Tensor]:
    """`<split>_x` standardised with the statistics of `train_x` (or the given ones), kept as `scale_mean/std`."""
    scale = scale or Standardiser.fit(raw["train_x"])
    out = {k: scale(v) if k.endswith("_x") else v for k, v in raw.items()}
    return {**out, "scale_mean": scale.mean.cpu(), "scale_std": scale.std.cpu()}


def _bundle(data: dict[str, Tensor], num_classes: int, class_names: list[str], name: str,
            state: Optional[dict] = None) -> DataBundle:
    """A DataBundle of feature TensorSplits; absent splits stand in for each other (a checkpoint's evaluation)."""
    splits = {s: TensorSplit(data[f"{s}_x"].float(), data[f"{s}_y"].long()) for s in SPLITS if f"{s}_x" in data}
    first = next(iter(splits.values()))
    state = {"input": "vectors", **(state or {}), "feature_mean": data["scale_mean"], "feature_std": data["scale_std"]}
    return DataBundle(**{s: splits.get(s, first) for s in SPLITS}, num_classes=num_classes,
                      class_names=list(class_names), model_kwargs={"in_features": int(first.inputs.shape[1])},
                      name=name, state=state)


def _batched_extract(x: Tensor, spec: FeatureSpec, device: torch.device, batch: int,
                     prepare: Callable[[Tensor], Tensor], what: str = "features") -> Tensor:
    """extract(prepare(chunk)) for chunks of `batch` images of `x` on `device`; features [N', D] on the CPU."""
    chunks = range(0, len(x), batch)
    bar = Progress(len(chunks), what)
    out = []
    for k, lo in enumerate(chunks, 1):
        out.append(extract(prepare(x[lo:lo + batch].to(device)), spec=spec).cpu())
        bar.update(k)
    bar.close()
    return torch.cat(out)


def build_feature_data(source: Union[DataBundle, Callable[..., DataBundle]],
                       features: Sequence[str] = ("hog", "colour_histogram"), hist_bins: int = 16,
                       value_range: tuple[float, float] = (0.0, 1.0), cell: int = 8, block: int = 2,
                       orientations: int = 9, cache_dir: Optional[str] = None, device: str = "cpu",
                       batch_size: int = 2048, root: Optional[str] = None, state: Optional[dict] = None,
                       only: Optional[str] = None) -> DataBundle:
    """An image DataBundle (or a builder of one: a Hydra `_partial_`) as standardised feature vectors [N,D]."""
    if isinstance(source, DataBundle):
        bundle = source
    else:
        extra = {"root": root} if root is not None else {}  # data.root means the same as for the images
        if state is not None:  # the source's own data state (older checkpoints kept the classes outside it)
            source_state = {"class_names": state["class_names"], **state["image"]}
            extra.update(named_arguments(source, state=source_state, only=only))  # e.g. build_digits has no `only`
        bundle = source(**extra)
    spec = FeatureSpec(features, hist_bins, value_range, cell, block, orientations)  # pixel units
    splits = {s: getattr(bundle, s) for s in SPLITS}
    for s, split in splits.items():
        if not isinstance(split, TensorSplit) or split.inputs.ndim != 4 or split.targets.ndim != 1:
            raise ConfigError(f"features need in-memory image splits (TensorSplit [N,C,H,W] with labels [N]); "
                              f"{bundle.name or 'the dataset'}'s {s} split is not: use an image data config")
    key = {"name": bundle.name, "spec": spec.key(), "sizes": [len(v) for v in splits.values()],
           "data": _fingerprint(*[v.targets for v in splits.values()], splits["train"].inputs[:256])}

    def compute() -> dict:
        dev = select_device(device)
        raw = {}
        for s, split in splits.items():
            def to_pixels(x: Tensor, split=split) -> Tensor:  # the model's input, mapped back to pixel units
                x = split.prepare(x, x.new_zeros(len(x)))[0] if split.prepare is not None else x
                return unnormalise(x, tuple(bundle.mean), tuple(bundle.std)) if bundle.mean and bundle.std else x
            raw[f"{s}_x"] = _batched_extract(split.inputs, spec, dev, batch_size, to_pixels, f"{s} features")
            raw[f"{s}_y"] = split.targets.cpu()
        scale = Standardiser(state["feature_mean"], state["feature_std"]) if state is not None else None
        return _standardised(raw, scale)

    data = compute() if state is not None else \
        _cached(cache_dir, f"{bundle.name or 'images'}-features", key, compute)
    image = bundle.data_state()  # what the source builder gets back to rebuild its images from a checkpoint
    return _bundle(data, bundle.num_classes, bundle.class_names, f"{bundle.name}+{'+'.join(spec.names)}",
                   {"input": "features", "image": image, "features": spec.key()})


def _check_patch(patch: int, context: int) -> None:
    if patch < 1:
        raise ConfigError(f"data.patch={patch} is not valid: it must be >= 1 (16 for roads and mitochondria)")
    if context < 0:
        raise ConfigError(f"data.context={context} is not valid: it must be >= 0 (pixels around each patch)")


def _patch_bundle(name: str, foreground: str, parts: dict[str, tuple[Tensor, Tensor]], key: dict, spec: FeatureSpec,
                  patch: int, context: int, rule: str, threshold: float, max_train_patches: Optional[int], seed: int,
                  device: str, cache_dir: Optional[str]) -> DataBundle:
    """Standardised, cached features and labels of every patch of (images, masks) per split; train maybe subsampled."""
    def compute() -> dict[str, Tensor]:
        raw = {}
        for s, (images, masks) in parts.items():  # features of every patch of uint8 images, in patch_labels' order
            raw[f"{s}_x"] = _batched_extract(images, spec, select_device(device), 8,
                                             lambda x: patchify(x / 255.0, patch, context))
            raw[f"{s}_y"] = patch_labels(masks, patch, rule, threshold).flatten()
        if max_train_patches is not None and len(raw["train_y"]) > max_train_patches:
            keep = torch.randperm(len(raw["train_y"]), generator=torch.Generator().manual_seed(seed))[:max_train_patches]
            keep = keep.sort().values
            raw["train_x"], raw["train_y"] = raw["train_x"][keep], raw["train_y"][keep]
        return _standardised(raw)

    data = _cached(cache_dir, f"{name}-patches", {**key, "spec": spec.key(), "patch": patch, "context": context},
                   compute)
    # what cnnlab-predict needs to compute the features of new images (predict_masks)
    state = {"input": "patches", "patch": patch, "context": context, "features": spec.key(),
             "in_channels": int(next(iter(parts.values()))[0].shape[1])}
    return _bundle(data, 2, ["background", foreground], f"{name}_patches", state)


def build_road_patches(root: str, patch: int = 16, threshold: float = 0.25,
                       features: Sequence[str] = ("colour_moments", "colour_histogram", "hog"), context: int = 0,
                       val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, hist_bins: int = 16,
                       cell: int = 8, block: int = 2, orientations: int = 9, cache_dir: Optional[str] = None,
                       device: str = "cpu", max_images: Optional[int] = None,
                       value_range: tuple[float, float] = (0.0, 1.0)) -> DataBundle:
    """Road patch classification: features of each 16x16 patch (+ `context` pixels), label = mean road > threshold."""
    _check_patch(patch, context)
    check_road_options(max_images, val_fraction, test_fraction)
    check_fraction("threshold", threshold, zero=True, meaning="a patch is road when its mean foreground is > it")
    spec = FeatureSpec(features, hist_bins, value_range, cell, block, orientations)
    images, masks, names = read_roads(root, max_images)
    # the test images have no masks: the splits are training images (never patches, which are correlated)
    index = dict(zip(SPLITS, image_split(len(names), val_fraction, test_fraction, seed)))
    key = {"root": str(Path(root).expanduser().resolve()), "names": names, "threshold": threshold,
           "split": [v.tolist() for v in index.values()], "data": _fingerprint(images[:, :, ::37, ::37], masks)}
    return _patch_bundle("roads", "road", {s: (images[i], masks[i]) for s, i in index.items()}, key, spec, patch,
                         context, "mean", threshold, None, seed, device, cache_dir)


def build_mito_patches(root: str, patch: int = 16, rule: str = "centre",
                       features: Sequence[str] = ("colour_moments", "colour_histogram", "hog"), context: int = 0,
                       slice_step: int = 4, max_train_patches: Optional[int] = 100_000, val_fraction: float = 0.2,
                       test_fraction: float = 0.2, seed: int = 0, hist_bins: int = 16, cell: int = 8,
                       block: int = 2, orientations: int = 9, cache_dir: Optional[str] = None,
                       device: str = "cpu", value_range: tuple[float, float] = (0.0, 1.0)) -> DataBundle:
    """Mitochondria patch classification on every `slice_step`-th slice; label by the centre pixel or majority."""
    # 165 slices of 768x1024 hold ~500k patches: the default keeps 41 slices and at most 100k training patches
    _check_patch(patch, context)
    check_count("max_train_patches", max_train_patches, nullable=True, meaning="all")
    spec = FeatureSpec(features, hist_bins, value_range, cell, block, orientations)
    check_mito_options(slice_step, val_fraction, test_fraction)
    root_path = Path(root).expanduser()
    parts = read_blocks(root_path, "tiff", slice_step, val_fraction, test_fraction, MASK_THRESHOLD, 2)
    key = {"root": str(root_path.resolve()), "rule": rule, "step": slice_step, "max": max_train_patches, "seed": seed,
           "data": _fingerprint(*[m for _, m in parts.values()], *[i[:, :, ::41, ::41] for i, _ in parts.values()])}
    return _patch_bundle("mito", "mitochondrion", parts, key, spec, patch, context, rule, 0.5, max_train_patches,
                         seed, device, cache_dir)
