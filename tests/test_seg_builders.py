"""Segmentation data builders on files the tests write in the real layouts: splits, dtypes, state, bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.featureset import build_mito_patches
from cnnlab.data.mito import build_mito
from cnnlab.data.roads import build_roads
from cnnlab.data.segaugment import SegAugment
from cnnlab.data.segsynth import build_mito_synthetic, build_roads_synthetic, em_slices, road_scenes
from cnnlab.errors import ConfigError
from fakes import write_mito, write_mito_png, write_roads, write_tiff

STATE_KEYS = {"task", "input", "class_names", "in_channels", "mean", "std", "mask_threshold", "threshold"}


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_roads_bundle_splits_by_image_keeps_uint8_and_prepares_per_batch(tmp_path):
    write_roads(tmp_path, numbers=range(1, 11))
    b = build_roads(str(tmp_path), val_fraction=0.2, test_fraction=0.2, augment=SegAugment(crop=16))
    assert (b.task, b.num_classes, b.class_names, b.model_kwargs) == \
        ("segmentation", 2, ["background", "road"], {"in_channels": 3})
    assert (len(b.train), len(b.val), len(b.test)) == (6, 2, 2)
    assert b.train.inputs.dtype == b.train.targets.dtype == torch.uint8 and b.train.targets.shape == (6, 32, 32)
    files = b.state["files"]
    assert sorted(files["train"] + files["val"] + files["test"]) == [f"satImage_{k:03d}.png" for k in range(1, 11)]
    x, y = b.train.batch(slice(0, 6))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)  # train statistics normalise train
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert y[0, 0].tolist() == [0] * 8 + [1] * 9 + [0] * 15  # columns 8..15 road, the 128 edge at 16 too
    assert STATE_KEYS <= set(b.state) and _plain(b.state)
    assert (b.state["patch"], b.state["patch_threshold"], b.state["mask_threshold"]) == (16, 0.25, 127)
    xa, ya = b.train_augment(x, y, torch.Generator().manual_seed(0))
    assert xa.shape == (6, 3, 16, 16) and ya.shape == (6, 16, 16)
    with pytest.raises(ConfigError, match="data.augment.crop=64"):
        build_roads(str(tmp_path), augment=SegAugment(crop=64))


def test_roads_bad_input_is_one_line_naming_the_files(tmp_path):
    write_roads(tmp_path)
    (tmp_path / "training/groundtruth/satImage_004.png").unlink()
    with pytest.raises(ConfigError, match=r"images/satImage_004.png has no mask .*groundtruth/satImage_004.png"):
        build_roads(str(tmp_path))
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "training/groundtruth/satImage_004.png")
    with pytest.raises(ConfigError) as err:
        build_roads(str(tmp_path))
    msg = str(err.value)
    assert "groundtruth/satImage_004.png is 20x16" in msg and "images/satImage_004.png is 32x32" in msg
    assert "\n" not in msg
    (tmp_path / "training/images/satImage_004.png").unlink()
    with pytest.raises(ConfigError, match="groundtruth/satImage_004.png has no image"):
        build_roads(str(tmp_path))
    for p in (tmp_path / "training/images").glob("*.png"):
        p.unlink()
    with pytest.raises(ConfigError, match="no PNG images in"):
        build_roads(str(tmp_path))


def test_masks_with_more_classes_than_configured(tmp_path):
    write_roads(tmp_path)  # anti-aliased: values 0, 100, 128, 237
    with pytest.raises(ConfigError, match=r"satImage_001.png holds mask values \[0, 100, 128, 237\]"):
        build_roads(str(tmp_path), mask_threshold=None)
    with pytest.raises(ConfigError, match="class_names has 3 names"):
        build_roads(str(tmp_path), class_names=["a", "b", "c"])


def test_mito_tiff_contiguous_blocks_and_testing_stack(tmp_path):
    images, masks = write_mito(tmp_path, slices=10, testing=False)
    b = build_mito(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    assert b.state["layout"] == "mito_tiff" and b.model_kwargs == {"in_channels": 1}
    assert b.train.inputs.shape == (6, 1, 32, 48) and b.train.targets.dtype == torch.uint8
    assert torch.equal(b.val.inputs[:, 0], torch.from_numpy(images[6:8]))   # the block after training
    assert torch.equal(b.test.inputs[:, 0], torch.from_numpy(images[8:10]))  # the last block
    assert torch.equal(b.val.targets, torch.from_numpy(masks[6:8] // 255))
    write_tiff(tmp_path / "testing.tif", images[:3])
    write_tiff(tmp_path / "testing_groundtruth.tif", masks[:3])
    b = build_mito(str(tmp_path), val_fraction=0.2, slice_step=2)
    assert (len(b.train), len(b.val), len(b.test)) == (4, 1, 2)  # 5 kept slices; test = testing.tif pages 0, 2
    assert torch.equal(b.train.inputs[:, 0], torch.from_numpy(images[[0, 2, 4, 6]]))


def test_mito_tiff_pages_must_match_the_ground_truth(tmp_path):
    images, masks = write_mito(tmp_path, slices=6, testing=False)
    write_tiff(tmp_path / "training_groundtruth.tif", masks[:5])
    with pytest.raises(ConfigError, match="training.tif has 6 pages but .*training_groundtruth.tif has 5"):
        build_mito(str(tmp_path))
    with pytest.raises(ConfigError, match="has 6 pages but"):  # the patch-feature pipeline checks too
        build_mito_patches(str(tmp_path), slice_step=1)
    write_tiff(tmp_path / "training_groundtruth.tif", [*masks[:5], masks[5, :, :40]])  # last page narrower
    with pytest.raises(ConfigError, match="page 5 of .*training.tif is 48x32 but page 5 of .* is 40x32"):
        build_mito(str(tmp_path))


def test_mito_png_layout_natural_order_and_multiclass(tmp_path):
    write_mito_png(tmp_path / "two", slices=12)
    b = build_mito(str(tmp_path / "two"), val_fraction=0.25, test_fraction=0.25)
    assert b.state["layout"] == "mito_png"
    # slice_k is filled with k: blocks follow slice_1..slice_12, not the string order slice_1, slice_10, ...
    assert b.train.inputs[:, 0, 0, 1].tolist() == [1, 2, 3, 4, 5, 6]
    assert b.val.inputs[:, 0, 0, 1].tolist() == [7, 8, 9] and b.test.inputs[:, 0, 0, 1].tolist() == [10, 11, 12]
    assert set(b.train.targets.unique().tolist()) == {0, 1}
    _, masks = write_mito_png(tmp_path / "three", slices=8, classes=3)
    b = build_mito(str(tmp_path / "three"), layout="png", num_classes=3)
    assert b.num_classes == 3 and b.class_names == ["class_0", "class_1", "class_2"]
    assert torch.equal(b.train.targets, torch.from_numpy(masks[:5]))
    with pytest.raises(ConfigError, match=r"slice_1.png holds mask values \[0, 1, 2\] but data.num_classes=2"):
        build_mito(str(tmp_path / "three"))


def test_mito_missing_or_empty_folders(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        build_mito(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="no mitochondria data"):
        build_mito(str(tmp_path))
    (tmp_path / "training/images").mkdir(parents=True)
    (tmp_path / "training/groundtruth").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no PNG images in"):
        build_mito(str(tmp_path))


def test_synthetic_generators_are_deterministic_by_seed():
    x, m = road_scenes(6, 48, seed=3)
    x2, m2 = road_scenes(6, 48, seed=3)
    assert torch.equal(x, x2) and torch.equal(m, m2) and not torch.equal(road_scenes(6, 48, seed=4)[0], x)
    assert x.dtype == m.dtype == torch.uint8 and x.shape == (6, 3, 48, 48) and 0.03 < m.float().mean() < 0.5
    road, ground = x.float().mean(1)[m.bool()], x.float().mean(1)[~m.bool()]
    assert road.mean() > ground.mean() + 10  # grey asphalt is brighter than the fields on average
    e, em = em_slices(4, 40, 56, seed=1)
    assert torch.equal(e, em_slices(4, 40, 56, seed=1)[0]) and e.shape == (4, 1, 40, 56)
    assert 0.01 < em.float().mean() < 0.4
    assert e[:, 0][em.bool()].float().mean() < e[:, 0][~em.bool()].float().mean() - 20  # dark matrix
    b = build_roads_synthetic(num_images=10, size=32)
    assert (len(b.train), len(b.val), len(b.test)) == (6, 2, 2) and b.state["patch"] == 16
    b = build_mito_synthetic(num_slices=10, height=32, width=32)
    assert b.model_kwargs == {"in_channels": 1} and len(b.val) == 2
