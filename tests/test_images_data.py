"""The IDX reader and MNIST/digits builders, on files written here in the real formats."""

import numpy as np
import pytest
import torch

from cnnlab.data.fakes import write_idx, write_mnist
from cnnlab.data.mnist import build_digits, build_mnist, read_idx
from cnnlab.errors import ConfigError


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_idx(tmp_path / "a.idx", arr, compress)
    path = tmp_path / "a.idx"
    if compress:
        path = path.rename(tmp_path / "a.idx.gz")
    assert torch.equal(read_idx(path), torch.from_numpy(arr))


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    write_idx(tmp_path / "t", np.zeros((4, 4), np.uint8))
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(tmp_path / "t")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "png")


def test_build_mnist_reads_torchvision_layout(tmp_path):
    data = write_mnist(tmp_path)
    b = build_mnist(str(tmp_path), val_size=20)
    assert b.train.inputs.shape == (100, 1, 32, 32) and b.train.inputs.dtype == torch.uint8  # normalised per batch
    assert len(b.val) == 20 and len(b.test) == 30
    assert torch.bincount(b.val.targets).tolist() == [2] * 10  # stratified
    # the test split is the official test file, padded by 2 and normalised with train statistics
    raw = torch.from_numpy(data["t10k"][0]).float() / 255
    restored = b.test.batch(slice(None))[0][:, 0, 2:30, 2:30] * b.std[0] + b.mean[0]
    assert torch.allclose(restored, raw, atol=1e-5)
    assert torch.equal(b.test.targets, torch.from_numpy(data["t10k"][1]).long())
    assert b.model_kwargs == {"in_channels": 1} and b.num_classes == 10


def test_fashion_variant_and_uncompressed_files(tmp_path):
    write_mnist(tmp_path, variant="FashionMNIST", compress=False)
    b = build_mnist(str(tmp_path), variant="FashionMNIST", val_size=10)
    assert b.class_names[9] == "Ankle boot" and len(b.train) == 110


def test_missing_folder_names_files_and_fixes(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_mnist(str(tmp_path / "empty"))
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "data.download=true", "data.root="):
        assert part in msg


def test_digits_split_is_fixed_and_stratified():
    a, b = build_digits(split_seed=0), build_digits(split_seed=0)
    assert torch.equal(a.test.targets, b.test.targets) and torch.equal(a.test.inputs, b.test.inputs)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert a.train.inputs.shape[1:] == (1, 32, 32)
    counts = torch.bincount(a.test.targets)
    assert counts.min() >= 26 and counts.max() <= 28
