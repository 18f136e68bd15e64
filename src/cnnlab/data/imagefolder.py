"""Any `root/<class>/<image>` tree: in memory as tensors when small, else a Dataset for the worker DataLoader.

Small trees are decoded once and augmented on the device; large ones are decoded and augmented in DataLoader workers."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms as T

from cnnlab.data.augment import BatchAugment
from cnnlab.data.common import DataBundle, TensorSplit, channel_stats
from cnnlab.data.imageio import BadImageFile, EXTENSIONS, decoding, image_state, open_image, prepare_images
from cnnlab.data.splits import stratified_split
from cnnlab.errors import ConfigError

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYOUT = "<root>/<class name>/<image>.png|jpg|..."

Samples = list[tuple[Path, int]]


def scan(folder: Path, classes: Optional[list[str]] = None) -> "tuple[list[str], Samples]":
    """Class names (sorted sub-folders, or the given ones) and (file, label) pairs under `folder`."""
    if not folder.is_dir():
        raise ConfigError(f"image folder {folder} does not exist: set data.root to a folder laid out as {LAYOUT}")
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        raise ConfigError(f"{folder} has classes {sorted(set(found) - set(classes))} that the train folder lacks: "
                          "give every split the same class folders")
    samples = [(p, label) for label, name in enumerate(classes) if (folder / name).is_dir()
               for p in sorted((folder / name).rglob("*")) if p.suffix.lower() in EXTENSIONS and p.is_file()]
    if not samples:
        raise ConfigError(f"no images found in {folder}: expected the layout {LAYOUT}")
    if len(classes) < 2:
        raise ConfigError(f"{folder} has {len(classes)} class folder ({', '.join(classes)}): a classifier needs at "
                          f"least two, laid out as {LAYOUT}")
    return classes, samples


BAD_FILE_FIX = "remove the file or set data.on_bad_file=skip"


def _bad_file(error: BadImageFile, on_bad_file: str) -> None:
    """Apply the on_bad_file policy: raise the one-line error naming the file, or log one warning line."""
    if on_bad_file == "error":
        raise error
    log.warning("skipping unreadable image %s (%s)", error.path, error.reason)


def load_image(path: Path, on_bad_file: str) -> Optional[Image.Image]:
    """The RGB image at `path`, or None when it cannot be decoded and on_bad_file is skip."""
    try:
        img = open_image(path, BAD_FILE_FIX)
    except BadImageFile as e:
        _bad_file(e, on_bad_file)
        return None
    return img.convert("RGB")


def readable(samples: Samples, on_bad_file: str) -> Samples:
    """The samples whose files PIL can identify and verify (no full decode), under the on_bad_file policy."""
    kept = []
    for path, label in samples:
        try:
            with decoding(path, BAD_FILE_FIX), Image.open(path) as img:
                img.verify()
            kept.append((path, label))
        except BadImageFile as e:
            _bad_file(e, on_bad_file)
    return kept


class ImageFileDataset(Dataset):
    """(uint8 image [3,S,S], label) per file, decoded in a worker; an undecodable file is replaced by the next."""

    def __init__(self, samples: Samples, transform: Callable, on_bad_file: str = "skip",
                 prepare: Optional[Callable] = None) -> None:
        self.samples, self.transform, self.on_bad_file, self.prepare = samples, transform, on_bad_file, prepare

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> "tuple[Tensor, int]":
        for k in range(len(self.samples)):
            path, label = self.samples[(i + k) % len(self.samples)]
            img = load_image(path, self.on_bad_file)
            if img is not None:
                return self.transform(img), label
        raise ConfigError("no image in this split can be decoded: check the files under data.root")


def decode_all(samples: Samples, image_size: int, on_bad_file: str) -> "tuple[Tensor, Tensor]":
    """uint8 [N,3,S,S] (shorter side resized to S, centre crop) and long [N] labels for readable files."""
    prep = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.PILToTensor()])
    images, labels = [], []
    for path, label in samples:
        img = load_image(path, on_bad_file)
        if img is not None:
            images.append(prep(img))
            labels.append(label)
    if not images:
        raise ConfigError("no readable images in the image folder: check the files under data.root")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


SPLIT_FOLDERS = (("train", "training"), ("val", "valid", "validation"), ("test", "testing"))


def split_samples(root: Path, train_dir: Optional[str], val_dir: Optional[str], test_dir: Optional[str],
                  val_fraction: float, split_seed: int,
                  classes: Optional[list[str]] = None) -> "tuple[list[str], list[Optional[Samples]]]":
    """Class names and [train, val, test] samples: given folders, or a stratified split of `root`."""
    if train_dir is None and val_dir is None and test_dir is None:  # train/ and val/ are never read as classes
        present = {p.name for p in root.iterdir() if p.is_dir()}
        found = [next((n for n in names if n in present), None) for names in SPLIT_FOLDERS]
        if found[0] and (found[1] or found[2]):
            train_dir, val_dir, test_dir = found
            log.info(f"{root} holds split folders: train={train_dir} val={val_dir} test={test_dir}")
    if not 0 < val_fraction < 1 and val_dir is None:
        raise ConfigError(f"data.val_fraction={val_fraction} must be in (0, 1), or give data.val_dir")
    classes, train = scan(root / train_dir if train_dir else root, classes)
    if val_dir is not None:
        val = scan(root / val_dir, classes)[1]
    else:
        labels = torch.tensor([label for _, label in train])
        val_idx, train_idx = stratified_split(labels, (val_fraction, 1 - val_fraction), split_seed)
        train, val = [train[i] for i in train_idx.tolist()], [train[i] for i in val_idx.tolist()]
    test = None if test_dir is None else scan(root / test_dir, classes)[1]
    if test is None:
        log.warning("no data.test_dir: the test split is the validation split")
    if not train or not val:
        raise ConfigError(f"the {'train' if not train else 'validation'} split of {root} is empty: add images "
                          "or change data.val_fraction")
    return classes, [train, val, test]


def build_imagefolder(root: str, image_size: int = 224, val_fraction: float = 0.1, split_seed: int = 0,
                      train_dir: Optional[str] = None, val_dir: Optional[str] = None, test_dir: Optional[str] = None,
                      on_bad_file: str = "skip", in_memory: Optional[bool] = None, max_memory_mb: int = 2048,
                      crop_padding: Optional[int] = None, hflip: bool = True, jitter: float = 0.0,
                      mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                      state: Optional[dict] = None, only: Optional[str] = None) -> DataBundle:
    """An image-classification DataBundle from `root/<class>/<image>` (or its train/val/test sub-folders)."""
    if on_bad_file not in ("skip", "error"):
        raise ConfigError(f"data.on_bad_file must be skip or error, got {on_bad_file!r}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ConfigError(f"data.root={root} does not exist: point it at a folder laid out as {LAYOUT}")
    known = list(state["class_names"]) if state else None
    classes, parts = split_samples(base, train_dir, val_dir, test_dir, val_fraction, split_seed, known)
    if state:
        mean, std = state["mean"], state["std"]
        if only is not None:
            keep = {"train": 0, "val": 1, "test": 2 if parts[2] is not None else 1}[only]
            parts = [p if k == keep else None for k, p in enumerate(parts)]
    n_files = len({p for part in parts if part is not None for p, _ in part})
    if state and state.get("shorter_side"):  # the checkpoint's choice (its resize differs), not one made anew from
        in_memory = state["shorter_side"] == image_size  # the size of the one split read here
    elif in_memory is None:  # uint8 tensors of 3 x S x S per image
        in_memory = n_files * 3 * image_size ** 2 <= max_memory_mb * 2 ** 20
    augment = None
    if in_memory:  # every split decoded once into uint8 TensorSplits, normalised per batch
        decoded = [None if p is None else decode_all(p, image_size, on_bad_file) for p in parts]
        if mean is None or std is None:
            mean, std = channel_stats(decoded[0][0])
        splits = [None if d is None else TensorSplit(*d, prepare_images(mean, std)) for d in decoded]
        augment = BatchAugment(image_size // 8 if crop_padding is None else crop_padding, hflip, jitter)
        geometry = image_state(3, (image_size, image_size), shorter_side=image_size)
    else:  # decoded in DataLoader workers; batches cross processes as uint8 (4x fewer bytes than float32) and are
        # normalised on the device (scripts/bench_imagefolder.py measures this against torchvision's float pipeline)
        mean, std = tuple(mean or IMAGENET_MEAN), tuple(std or IMAGENET_STD)
        resized = round(image_size * 256 / 224)
        flip = [T.RandomHorizontalFlip()] if hflip else []
        train_tf = T.Compose([T.RandomResizedCrop(image_size), *flip, T.PILToTensor()])
        eval_tf = T.Compose([T.Resize(resized), T.CenterCrop(image_size), T.PILToTensor()])
        splits = [None if p is None else ImageFileDataset(readable(p, on_bad_file), train_tf if k == 0 else eval_tf,
                                                          on_bad_file, prepare_images(mean, std))
                  for k, p in enumerate(parts)]
        geometry = image_state(3, (image_size, image_size), shorter_side=resized)
    read = next(p for p in splits if p is not None)  # with `only`: the one split read stands in for the others
    val = next(p for p in (splits[1], splits[2], read) if p is not None)
    test = next(p for p in (splits[2], splits[1], read) if p is not None)  # no test folder: test on validation
    return DataBundle(train=splits[0] if splits[0] is not None else val, val=val, test=test, num_classes=len(classes),
                      class_names=classes, model_kwargs={"in_channels": 3}, train_augment=augment,
                      mean=tuple(mean), std=tuple(std), name=base.name, state=geometry)
