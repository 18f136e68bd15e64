"""CIFAR-10 pickle batches and ImageFolder trees, written here in their real on-disk formats and read back."""
import logging
import pickle

import pytest
import torch

from cnnlab.data.augment import BatchAugment
from cnnlab.data.cifar import build_cifar10, read_batch
from cnnlab.data.common import TensorSplit
from cnnlab.data.imagefolder import ImageFileDataset, build_imagefolder
from cnnlab.errors import ConfigError
from fakes import write_cifar, write_tree

def test_cifar_batch_layout_is_rgb_planes(tmp_path):
    folder, batches = write_cifar(tmp_path)
    images, labels = read_batch(folder / "data_batch_2")
    data, expected = batches["data_batch_2"]
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == expected
    assert images[5, 1, 2, 3] == data[5, 1024 + 2 * 32 + 3]  # green plane, row 2, column 3


def test_build_cifar10_splits_and_normalises_by_train(tmp_path):
    write_cifar(tmp_path)
    b = build_cifar10(str(tmp_path), val_size=20, split_seed=1)
    assert (len(b.train), len(b.val), len(b.test)) == (180, 20, 40)
    assert b.class_names[1] == "automobile" and b.num_classes == 10
    assert b.model_kwargs == {"in_channels": 3} and isinstance(b.train_augment, BatchAugment)
    assert torch.bincount(b.val.targets, minlength=10).tolist() == [2] * 10  # stratified
    assert b.train.inputs.dtype == torch.uint8  # stored compactly, normalised per batch
    x = b.train.batch(slice(None))[0]
    assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    assert b.mean[0] == pytest.approx(127.5 / 255, abs=0.05) and len(b.std) == 3
    again = build_cifar10(str(tmp_path), val_size=20, split_seed=1)
    assert torch.equal(again.val.targets, b.val.targets) and torch.equal(again.val.inputs, b.val.inputs)


def test_cifar_val_size_zero_validates_on_test_with_warning(tmp_path, caplog):
    write_cifar(tmp_path)
    with caplog.at_level(logging.WARNING):
        b = build_cifar10(str(tmp_path), val_size=0)
    assert len(b.train) == 200 and b.val is b.test
    assert "val_size=0" in caplog.text


def test_cifar_missing_folder_and_bad_pickle(tmp_path):
    with pytest.raises(ConfigError, match=r"data.download=true or data.root=<folder containing cifar-10-batches-py>"):
        build_cifar10(str(tmp_path / "nowhere"))
    folder, _ = write_cifar(tmp_path)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": ConfigError("not an array")}, f)  # a global outside the allow-list
    with pytest.raises(ConfigError, match="data_batch_1 is not a CIFAR-10 python pickle"):
        build_cifar10(str(tmp_path))


def test_imagefolder_in_memory_skips_bad_file(tmp_path, caplog):
    classes = write_tree(tmp_path)
    with caplog.at_level(logging.WARNING):
        b = build_imagefolder(str(tmp_path), image_size=8, val_fraction=0.34, split_seed=0)
    assert "broken.png" in caplog.text
    assert b.class_names == classes and b.num_classes == 3
    assert isinstance(b.train, TensorSplit) and b.train.inputs.shape[1:] == (3, 8, 8)
    assert len(b.train) + len(b.val) == 18 and len(b.val) == 6
    raw = b.train.batch(slice(None))[0] * torch.tensor(b.std).view(1, 3, 1, 1) + torch.tensor(b.mean).view(1, 3, 1, 1)
    dominant = raw.mean((2, 3)).argmax(1)  # cat = red, dog = green, fox = blue
    assert torch.equal(dominant, b.train.targets)


def test_imagefolder_bad_file_error_names_it(tmp_path):
    write_tree(tmp_path)
    with pytest.raises(ConfigError, match=r"broken\.png.*data.on_bad_file=skip"):
        build_imagefolder(str(tmp_path), image_size=8, on_bad_file="error")
    with pytest.raises(ConfigError, match=r"broken\.png"):
        build_imagefolder(str(tmp_path), image_size=8, on_bad_file="error", in_memory=False)


def test_imagefolder_dataset_path_with_given_folders(tmp_path, caplog):
    write_tree(tmp_path / "train")
    write_tree(tmp_path / "val", per_class=2, corrupt=False)
    with caplog.at_level(logging.WARNING):
        b = build_imagefolder(str(tmp_path), image_size=12, train_dir="train", val_dir="val", in_memory=False)
    assert isinstance(b.train, ImageFileDataset) and len(b.train) == 18 and len(b.val) == 6
    assert "broken.png" in caplog.text and b.train_augment is None
    x, y = b.train[0]
    assert x.shape == (3, 12, 12) and y == 0
    xv, yv = b.val[5]
    assert xv.shape == (3, 12, 12) and yv == 2
    loader = torch.utils.data.DataLoader(b.val, batch_size=4)
    assert next(iter(loader))[0].shape == (4, 3, 12, 12)


def test_imagefolder_missing_or_empty_root(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_imagefolder(str(tmp_path / "missing"))
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"no images found .*<root>/<class name>/<image>"):
        build_imagefolder(str(tmp_path / "empty"))


def test_imagefolder_with_train_and_val_folders_uses_them_as_splits(tmp_path, caplog):
    write_tree(tmp_path / "tree" / "train", corrupt=False)
    write_tree(tmp_path / "tree" / "val", per_class=2, corrupt=False)
    with caplog.at_level(logging.INFO):
        b = build_imagefolder(str(tmp_path / "tree"), image_size=8)
    assert b.class_names == ["cat", "dog", "fox"]  # not the classes "train" and "val"
    assert (len(b.train), len(b.val)) == (18, 6) and "split folders" in caplog.text


@pytest.mark.parametrize("only", ["train", "val", "test"])
def test_imagefolder_rebuilt_from_a_state_keeps_its_storage_and_gives_every_split(tmp_path, only):
    # a run trained from disk (too large for data.max_memory_mb) is evaluated with the same resize, even when the
    # one split read would fit in memory; with `only`, the split read stands in for the two that were not
    write_tree(tmp_path / "tree" / "train", per_class=8, corrupt=False)
    write_tree(tmp_path / "tree" / "test", per_class=2, corrupt=False)
    trained = build_imagefolder(str(tmp_path / "tree"), image_size=12, in_memory=False)
    state = trained.data_state()
    assert state["shorter_side"] == round(12 * 256 / 224)
    again = build_imagefolder(str(tmp_path / "tree"), image_size=12, state=state, only=only)
    assert isinstance(again.test, ImageFileDataset) and again.state == trained.state
    for split in (again.train, again.val, again.test):
        assert split is not None and len(split) > 0
    wanted = {"train": trained.train, "val": trained.val, "test": trained.test}[only]
    got = getattr(again, only)
    assert len(got) == len(wanted) and torch.equal(got[0][0], wanted[0][0])
