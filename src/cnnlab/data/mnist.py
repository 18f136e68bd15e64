"""Small image datasets that live on the device: scikit-learn's digits, MNIST and Fashion-MNIST (raw IDX files)."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets

from ..errors import ConfigError, first_line
from .augment import BatchAugment
from .common import DataBundle, TensorSplit, channel_stats
from .imageio import image_state, prepare_images
from .splits import holdout, stratified_split

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = tuple(Path(url).stem for url, _ in datasets.MNIST.resources)  # train images, labels, t10k ...
_VARIANTS = {"MNIST": [str(d) for d in range(10)], "FashionMNIST": datasets.FashionMNIST.classes}  # folder: classes


def read_idx(path: "str | Path") -> Tensor:
    """Read one IDX file (LeCun's MNIST format, optionally gzip-compressed) into a tensor of its stored shape."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"{path} is not a readable gzip file ({first_line(e)}): delete it and re-download with "
                          f"data.download=true") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path} is not an IDX file (bad magic number): re-download it with data.download=true")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ConfigError(f"{path} is truncated or corrupt ({len(raw)} bytes, header says {expected}): "
                          f"delete it and re-download with data.download=true")
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)
    return torch.from_numpy(data.astype(dtype.newbyteorder("=")).copy())


def _find_idx(raw_dir: Path, stem: str) -> Optional[Path]:
    return next((p for p in (raw_dir / stem, raw_dir / f"{stem}.gz") if p.is_file()), None)


def _mnist_raw_dir(root: Path, variant: str, download: bool, files: tuple[str, ...]) -> Path:
    """Locate `<root>/<variant>/raw` (torchvision's layout; `root` may also be the raw folder itself)."""
    for cand in (root / variant / "raw", root / "raw", root):
        if all(_find_idx(cand, s) for s in files):
            return cand
    if download:  # torchvision's download code, with its mirrors and checksums
        try:
            getattr(datasets, variant)(str(root), download=True)  # fetches all four files
        except (RuntimeError, OSError) as e:
            raise ConfigError(f"downloading {variant} into {root} failed ({first_line(e)}): check the internet "
                              f"connection, or put the four files into {root / variant / 'raw'} by hand") from None
        return root / variant / "raw"
    raise ConfigError(
        f"{variant} not found under {root}: expected {root / variant / 'raw'}/{{{','.join(files)}}}[.gz]; "
        f"download with data.download=true, or point data.root=<folder containing {variant}/raw>")


def _bundle(splits: dict, class_names: list, name: str, shift: int, state: dict,
            stats: "Optional[dict]" = None) -> DataBundle:
    """The splits (pixels in [0,1] or uint8) as a DataBundle normalised per batch, shifted by up to `shift` pixels."""
    mean, std = (tuple(stats["mean"]), tuple(stats["std"])) if stats else channel_stats(splits["train"][0])
    parts = {k: TensorSplit(x, y, prepare_images(mean, std)) for k, (x, y) in splits.items()}
    augment = BatchAugment(crop_padding=shift, hflip=False, fill=-mean[0] / std[0]) if shift > 0 else None
    test = parts["test"]  # a checkpoint's test-only evaluation: the test split stands in for the others
    return DataBundle(parts.get("train", test), parts.get("val", test), test, num_classes=len(class_names),
                      class_names=class_names, model_kwargs={"in_channels": 1}, train_augment=augment,
                      mean=mean, std=std, name=name, state=state)


def build_mnist(root: str, download: bool = False, variant: str = "MNIST", val_size: int = 5000,
                split_seed: int = 0, pad: int = 2, size: Optional[int] = None, shift: int = 0,
                state: Optional[dict] = None, only: Optional[str] = None) -> DataBundle:
    """MNIST or Fashion-MNIST, uint8 on the device: official test set; a stratified `val_size` split of train as val."""
    if variant not in _VARIANTS:
        raise ConfigError(f"data.variant={variant!r} is not known: choose one of {', '.join(_VARIANTS)}")
    test_only = only == "test" and state is not None
    files = _MNIST_FILES[2:] if test_only else _MNIST_FILES
    raw = _mnist_raw_dir(Path(root).expanduser(), variant, download, files)
    loaded = [read_idx(_find_idx(raw, name)) for name in files]  # [train images, train labels,] test images, labels
    if any(len(x) != len(y) for x, y in zip(loaded[::2], loaded[1::2])):
        raise ConfigError(f"{raw}: image and label files disagree in length; re-download with data.download=true")
    te_x = _prepare(loaded[-2], pad, size)
    splits = {"test": (te_x, loaded[-1].long())}
    if not test_only:
        tr_x, tr_y = _prepare(loaded[0], pad, size), loaded[1].long()
        tr_idx, va_idx = holdout(tr_y, val_size, split_seed, variant)
        splits["train"] = (tr_x[tr_idx], tr_y[tr_idx])
        splits["val"] = splits["test"] if va_idx is None else (tr_x[va_idx], tr_y[va_idx])
    side = te_x.shape[-1]
    geometry = image_state(1, (side, side), pad=0 if size else pad, resize=bool(size))
    return _bundle(splits, _VARIANTS[variant], variant.lower(), shift, geometry, state)


def _prepare(images: Tensor, pad: int, size: Optional[int]) -> Tensor:
    """uint8 [N,H,W] -> [N,1,H',W']: zero-padded by `pad` (uint8), or resized to `size` (float in [0,1])."""
    x = images.unsqueeze(1)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    if size and x.shape[-1] != size:
        x = F.interpolate(x.float().div_(255.0), size=(size, size), mode="bilinear", align_corners=False)
    return x


def build_digits(size: int = 32, val_fraction: float = 0.15, test_fraction: float = 0.15,
                 split_seed: int = 0, shift: int = 0, state: Optional[dict] = None,
                 root: Optional[str] = None) -> DataBundle:  # noqa: ARG001 (root: bundled data, no folder)
    """scikit-learn's 1,797 bundled 8x8 handwritten digits (no download), upsampled to `size`, fixed split."""
    from sklearn.datasets import load_digits

    if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise ConfigError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be > 0 "
                          f"and sum to less than 1 (the rest is the training split)")
    digits = load_digits()
    x = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)  # pixel values are 0..16
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.from_numpy(digits.target).long()
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    idx = dict(zip(("train", "val", "test"), stratified_split(y, fractions, split_seed)))
    geometry = image_state(1, (size, size), resize=True)
    return _bundle({k: (x[i], y[i]) for k, i in idx.items()}, [str(d) for d in range(10)], "digits", shift,
                   geometry, state)
