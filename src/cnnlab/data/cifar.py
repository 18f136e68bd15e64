"""CIFAR-10 from the official python pickle batches (`cifar-10-batches-py/`), held in memory as tensors.

The pickles are read through an unpickler that only rebuilds numpy arrays, so a tampered file cannot run code."""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from cnnlab.data.augment import BatchAugment
from cnnlab.data.common import DataBundle, TensorSplit, channel_stats
from cnnlab.data.imageio import image_state, prepare_images
from cnnlab.data.splits import holdout
from cnnlab.errors import ConfigError, first_line

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE, META_FILE = "test_batch", "batches.meta"
_ALLOWED = {  # everything a numpy array (and nothing else) needs to unpickle; numpy 2 renamed core -> _core
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # bytes in copies re-pickled by Python 3 (the official files are Python 2 pickles)
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the numpy array constructors."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 (pickle's signature)
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def unpickle(path: Path) -> dict:
    """One CIFAR pickle file as a dict with bytes keys (b'data', b'labels', ...)."""
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ConfigError(f"{path} is not a CIFAR-10 python pickle ({e}): delete it and rerun with "
                          "data.download=true") from e


def read_batch(path: Path) -> "tuple[Tensor, Tensor]":
    """Images uint8 [N,3,32,32] and labels long [N] from one batch file (b'data': N x 3072, planes R, G, B)."""
    d = unpickle(path)
    if b"data" not in d or b"labels" not in d:
        raise ConfigError(f"{path} has no b'data'/b'labels' entries: it is not a CIFAR-10 batch file")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(d[b"labels"]):
        raise ConfigError(f"{path}: b'data' has shape {data.shape}, expected N x 3072 with one label each")
    return torch.from_numpy(data.copy()).view(-1, 3, 32, 32), torch.tensor(d[b"labels"], dtype=torch.long)


def find_folder(root: str, download: bool, needed: "tuple[str, ...]" = (*TRAIN_FILES, TEST_FILE)) -> Path:
    """The `cifar-10-batches-py` folder under `root` (or `root` itself), downloading it first if asked."""
    base = Path(root).expanduser()
    if download:
        try:
            CIFAR10(str(base), train=True, download=True)  # fetches and extracts <root>/cifar-10-batches-py
        except (RuntimeError, OSError) as e:
            raise ConfigError(f"downloading CIFAR-10 into {base} failed ({first_line(e)}): check the internet "
                              f"connection, or unpack cifar-10-python.tar.gz into {base} by hand") from None
    for folder in (base / FOLDER, base):
        if all((folder / name).is_file() for name in needed):
            return folder
    raise ConfigError(f"no CIFAR-10 batches in {base / FOLDER} (expected {', '.join(needed)}, {META_FILE}): "
                      f"set data.download=true or data.root=<folder containing {FOLDER}>")


def class_names(folder: Path) -> list[str]:
    """Label names from `batches.meta`, or the ten standard ones when the file is absent."""
    if not (folder / META_FILE).is_file():
        return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return [n.decode() if isinstance(n, bytes) else str(n) for n in unpickle(folder / META_FILE)[b"label_names"]]


def build_cifar10(root: str, download: bool = False, val_size: int = 5000, split_seed: int = 0,
                  crop_padding: int = 4, hflip: bool = True, jitter: float = 0.0, state: Optional[dict] = None,
                  only: Optional[str] = None) -> DataBundle:
    """CIFAR-10, uint8 on the device: train minus a stratified `val_size` validation split (0: validate on test)."""
    test_only = only == "test" and state is not None
    folder = find_folder(root, download, (TEST_FILE,) if test_only else (*TRAIN_FILES, TEST_FILE))
    names = class_names(folder)
    train = val = None
    if state is not None:
        mean, std = tuple(state["mean"]), tuple(state["std"])
    if not test_only:
        images, labels = (torch.cat(part) for part in zip(*[read_batch(folder / name) for name in TRAIN_FILES]))
        train_idx, val_idx = holdout(labels, val_size, split_seed, "CIFAR-10")
        if state is None:
            mean, std = channel_stats(images[train_idx])
        prepare = prepare_images(mean, std)
        train = TensorSplit(images[train_idx], labels[train_idx], prepare)
        val = None if val_idx is None else TensorSplit(images[val_idx], labels[val_idx], prepare)
    test = TensorSplit(*read_batch(folder / TEST_FILE), prepare_images(mean, std))
    return DataBundle(train=train, val=val or test, test=test, num_classes=len(names), class_names=names,
                      model_kwargs={"in_channels": 3}, train_augment=BatchAugment(crop_padding, hflip, jitter),
                      mean=mean, std=std, name="cifar10", state=image_state(3, (32, 32), shorter_side=32))
