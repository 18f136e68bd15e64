"""The IDX reader and MNIST/digits builders, on files written here in the real formats."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data.mnist import build_digits, build_mnist, read_idx
from cnnlab.errors import ConfigError
from fakes import write_idx, write_mnist


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


def test_download_fetches_the_files_through_torchvision(tmp_path, monkeypatch):
    import shutil

    import torchvision.datasets.mnist as tv_mnist

    write_mnist(tmp_path / "served", compress=False)
    fetched = []

    def fetch(url, download_root, filename, md5):  # the network: the "served" files, already extracted
        fetched.append(filename)
        stem = filename.removesuffix(".gz")
        shutil.copy(tmp_path / "served" / "MNIST" / "raw" / stem, Path(download_root) / stem)

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", fetch)
    b = build_mnist(str(tmp_path / "data"), download=True, val_size=20)
    assert len(b.train) == 100 and len(b.test) == 30
    assert sorted(fetched) == sorted(["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])

    def offline(url, download_root, filename, md5):
        raise RuntimeError("no network")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(ConfigError, match="downloading FashionMNIST into .* failed .*: check the internet"):
        build_mnist(str(tmp_path / "data"), download=True, variant="FashionMNIST")


def test_digits_split_is_fixed_and_stratified():
    a, b = build_digits(split_seed=0), build_digits(split_seed=0)
    assert torch.equal(a.test.targets, b.test.targets) and torch.equal(a.test.inputs, b.test.inputs)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert a.train.inputs.shape[1:] == (1, 32, 32)
    counts = torch.bincount(a.test.targets)
    assert counts.min() >= 26 and counts.max() <= 28


def _shuffled_labels(counts: list[int]) -> torch.Tensor:
    """Labels with `counts[c]` samples of class c, in a scrambled order (the split must not rely on it)."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))]


def _check_partition(parts: list, n: int) -> None:
    everything = torch.cat(parts)
    assert len(everything) == n and torch.equal(everything.sort().values, torch.arange(n))  # disjoint, complete


def test_stratified_holdout_has_exactly_the_asked_size():
    from cnnlab.data.splits import holdout

    # 11 classes of 9: each class's share of val_size=20 is 9 * 20 / 99 = 1.82; rounding each class (2 each) gave
    # 22. Largest remainder: one each (11), then the 9 left over to 9 of the 11 (equal remainders) -> 20
    labels = _shuffled_labels([9] * 11)
    train, val = holdout(labels, 20, 0, "test")
    _check_partition([train, val], 99)
    assert len(val) == 20 and sorted(torch.bincount(labels[val]).tolist()) == [1, 1] + [2] * 9
    # classes of 3, 4, 9 (16 samples), val_size=3: shares 3*3/16 = 0.5625, 4*3/16 = 0.75, 9*3/16 = 1.6875;
    # rounded down 0, 0, 1 (one short of 3 by two); the two largest remainders (0.75, 0.6875) get one more:
    # 0, 1, 2 (rounding each class had given 1, 1, 2 = 4)
    labels = _shuffled_labels([3, 4, 9])
    for seed in (0, 1):
        train, val = holdout(labels, 3, seed, "test")
        _check_partition([train, val], 16)
        assert torch.bincount(labels[val], minlength=3).tolist() == [0, 1, 2]


def test_stratified_three_way_split_sizes_by_largest_remainder():
    from cnnlab.data.splits import stratified_split

    # 19 samples, fractions 0.7 / 0.15 / 0.15: 13.3, 2.85, 2.85 -> 13, 2, 2 plus one each to the .85s: 13, 3, 3.
    # Classes of 3, 7, 9 are cut at 13 (shares 2.05, 4.79, 6.16 -> 2, 5, 6) and at 16 (2.53, 5.89, 7.58 -> 2, 6,
    # 8): train 2, 5, 6; val 0, 1, 2; test 1, 1, 1 (rounding each class at 0.7 and 0.85 gave parts of 13, 4, 2)
    labels = _shuffled_labels([3, 7, 9])
    parts = stratified_split(labels, (0.7, 0.15, 0.15), 0)
    _check_partition(parts, 19)
    assert [torch.bincount(labels[p], minlength=3).tolist() for p in parts] == [[2, 5, 6], [0, 1, 2], [1, 1, 1]]


def test_split_sizes_come_from_the_fractions_as_written_not_their_floats():
    from cnnlab.data.splits import stratified_split

    # 5 samples, fractions 0.04 / 0.28 / 0.68: 0.2, 1.4, 3.4 -> 0, 1, 3 and one more to an equal .4 remainder, the
    # earlier part: 0, 2, 3. In floats 5 * 0.68 = 3.4000000000000004 would have taken it (0, 1, 4).
    assert 5 * 0.68 > 3.4
    parts = stratified_split(torch.zeros(5, dtype=torch.long), (0.04, 0.28, 0.68), 0)
    _check_partition(parts, 5)
    assert [len(p) for p in parts] == [0, 2, 3]
