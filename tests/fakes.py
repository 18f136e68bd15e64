"""Small datasets written in the real on-disk formats (IDX, CIFAR-10 python pickles, image folders, road PNGs,
EM TIFF stacks): for the tests and the benchmarks. The contents are random."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes, like the official files (made with Python 2): keys then load as
    bytes under encoding='bytes' (cnnlab) and as str under encoding='latin1' (torchvision)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def dump_py2(obj: dict, path: Path) -> None:
    """Pickle `obj` as the official CIFAR-10 files were written (Python 2, protocol 2)."""
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def write_cifar(root: Path, per_batch: int = 40, seed: int = 0) -> "tuple[Path, dict]":
    """Fake `cifar-10-batches-py`: dicts with b'data' uint8 N x 3072 (R, G, B planes) and b'labels'."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batches[name] = (data, labels)
        dump_py2({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                  b"filenames": [b"x.png"] * per_batch}, folder / name)
    dump_py2({b"label_names": NAMES, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, folder / "batches.meta")
    return folder, batches


def write_tree(root: Path, per_class: int = 6, size: "tuple[int, int]" = (20, 16), corrupt: bool = True) -> list:
    """root/<class>/<n>.png|jpg with a distinct colour per class, plus one corrupt file and one stray text file."""
    colours = {"cat": (255, 0, 0), "dog": (0, 255, 0), "fox": (0, 0, 255)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ext = "png" if i % 2 else "jpg"
            Image.new("RGB", size, colour).save(root / name / f"{i}.{ext}")
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"this is not a png")
    (root / "cat" / "notes.txt").write_text("ignored")
    return list(colours)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """LeCun's IDX: two zero bytes, type code 0x08 (ubyte), ndim, big-endian dims, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_mnist(root: Path, variant: str = "MNIST", n_train: int = 120, n_test: int = 30, compress: bool = True,
                seed: int = 0) -> dict:
    raw = root / variant / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ext = ".gz" if compress else ""
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(raw / f"{split}-images-idx3-ubyte{ext}", images, compress)
        write_idx(raw / f"{split}-labels-idx1-ubyte{ext}", labels, compress)
        data[split] = (images, labels)
    return data


ROAD = 237  # the real masks' road value; anti-aliased edges lie in between


def write_roads(root: Path, numbers: "tuple[int, ...]" = (1, 2, 4, 7, 9), size: int = 32, test_size: int = 48) -> Path:
    """The CIL layout with gaps in the numbering; road = a vertical band at columns 8..15 with soft edges."""
    (root / "training/images").mkdir(parents=True)
    (root / "training/groundtruth").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in numbers:
        rgb = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[:, 8:16] = ROAD
        mask[:, 7], mask[:, 16] = 100, 128  # below / just above the > 127 threshold
        rgb[mask > 127] = 200
        Image.fromarray(rgb).save(root / f"training/images/satImage_{k:03d}.png")
        Image.fromarray(mask).save(root / f"training/groundtruth/satImage_{k:03d}.png")
    for k in (2, 10):
        (root / f"test_set_images/test_{k}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (test_size, test_size, 3), dtype=np.uint8)).save(
            root / f"test_set_images/test_{k}/test_{k}.png")
    return root


def write_tiff(path: Path, pages: "np.ndarray | list") -> None:
    """A multi-page, deflate-compressed TIFF stack, as the EPFL EM volumes."""
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_adobe_deflate")


def write_mito(root: Path, slices: int = 10, h: int = 32, w: int = 48, testing: bool = True) -> tuple:
    """training.tif / training_groundtruth.tif (and testing*): random slices, a square mitochondrion per slice."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (slices, h, w), dtype=np.uint8)
    masks = np.zeros((slices, h, w), np.uint8)
    masks[:, 4:20, 8:24] = 255
    splits = ("training", "testing") if testing else ("training",)
    for split in splits:
        write_tiff(root / f"{split}.tif", images)
        write_tiff(root / f"{split}_groundtruth.tif", masks)
    return images, masks


def write_mito_png(root: Path, slices: int = 12, h: int = 32, w: int = 48, testing: bool = False,
                   classes: int = 2) -> tuple:
    """The PNG-slice layout: <root>/training/{images,groundtruth}/slice_<k>.png, k = 1..slices, unpadded numbers
    (so natural order differs from string order). Slice k is filled with the value k; masks are 0/255 for two
    classes, else class indices 0..classes-1 (a square of class 1, a band of the last class)."""
    rng = np.random.default_rng(2)
    images = (np.arange(1, slices + 1, dtype=np.uint8)[:, None, None] * np.ones((1, h, w), np.uint8))
    masks = np.zeros((slices, h, w), np.uint8)
    masks[:, 4:20, 8:24] = 255 if classes == 2 else 1
    if classes > 2:
        masks[:, 24:28, :] = classes - 1
    masks[:, 0, 0] = rng.integers(0, 2, slices) * masks.max()
    for split in ("training", "testing") if testing else ("training",):
        (root / split / "images").mkdir(parents=True)
        (root / split / "groundtruth").mkdir(parents=True)
        for k in range(slices):
            Image.fromarray(images[k]).save(root / split / "images" / f"slice_{k + 1}.png")
            Image.fromarray(masks[k]).save(root / split / "groundtruth" / f"slice_{k + 1}.png")
    return images, masks
