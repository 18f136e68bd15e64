"""Segmentation data in the real on-disk formats (written here), patch labels, submission CSV, patch features."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.common import DataBundle, TensorSplit
from cnnlab.data.featureset import build_feature_data, build_mito_patches, build_road_patches
from cnnlab.data.patches import patch_labels, patchify, write_submission
from cnnlab.data.splits import image_split
from cnnlab.data.segmentation import read_mito, read_roads, read_tiff_stack
from cnnlab.errors import ConfigError
from fakes import write_mito, write_roads

def test_read_roads_pairs_by_name_and_thresholds(tmp_path):
    write_roads(tmp_path)
    images, masks, names = read_roads(tmp_path)
    assert names == [f"satImage_{k:03d}.png" for k in (1, 2, 4, 7, 9)]
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 32, 32)
    assert masks.dtype == torch.uint8 and masks.shape == (5, 32, 32)
    assert masks[0, 0].tolist() == [0] * 8 + [1] * 8 + [1] + [0] * 15  # 237 and 128 -> road, 100 -> not


def test_missing_roads_folder_names_the_files(tmp_path):
    with pytest.raises(ConfigError) as err:
        read_roads(tmp_path / "nowhere")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "nowhere") in msg
    assert "training/images/satImage_NNN.png" in msg and "training/groundtruth/satImage_NNN.png" in msg
    assert "data.root" in msg


def test_roads_mismatched_pairs_and_sizes(tmp_path):
    write_roads(tmp_path)
    (tmp_path / "training/groundtruth/satImage_004.png").unlink()
    with pytest.raises(ConfigError, match="satImage_004.png"):
        read_roads(tmp_path)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "training/groundtruth/satImage_004.png")
    with pytest.raises(ConfigError, match="must match"):
        read_roads(tmp_path)


def test_mito_multipage_tiff_roundtrip(tmp_path):
    images, masks = write_mito(tmp_path)
    x, y = read_mito(tmp_path, "training")
    assert x.shape == (10, 1, 32, 48) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], torch.from_numpy(images))
    assert torch.equal(y, torch.from_numpy(masks // 255))
    x, _ = read_mito(tmp_path, "testing", slices=[1, 5])
    assert torch.equal(x[:, 0], torch.from_numpy(images[[1, 5]]))
    assert read_tiff_stack(tmp_path / "training.tif").shape == (10, 32, 48)
    with pytest.raises(ConfigError, match="training_groundtruth.tif"):
        (tmp_path / "training_groundtruth.tif").unlink()
        read_mito(tmp_path)


def test_patch_labels_by_the_quarter_rule():
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[0, 0, :4] = 1                     # patch (0,0): 4/16 = 0.25, not > 0.25 -> background
    mask[0, 0, 4:], mask[0, 3, 7] = 1, 1   # patch (0,1): 5/16 > 0.25 -> road
    mask[0, 4:, :4] = 1                    # patch (1,0): all road
    mask[0, 6, 6] = 1                      # patch (1,1): only its centre pixel (4+2, 4+2)
    assert patch_labels(mask, 4).tolist() == [[[0, 1], [1, 0]]]
    assert patch_labels(mask, 4, rule="majority").tolist() == [[[0, 0], [1, 0]]]
    assert patch_labels(mask, 4, rule="centre").tolist() == [[[0, 0], [1, 1]]]
    with pytest.raises(ConfigError, match="data.patch"):
        patch_labels(mask, 3)


def test_patchify_order_and_context():
    x = torch.arange(2 * 1 * 4 * 6).view(2, 1, 4, 6).float()
    p = patchify(x, 2)
    assert p.shape == (2 * 2 * 3, 1, 2, 2)
    assert torch.equal(p[4], x[0, :, 2:4, 2:4]) and torch.equal(p[6], x[1, :, 0:2, 0:2])
    c = patchify(x, 2, context=1)
    assert c.shape == (12, 1, 4, 4) and torch.equal(c[4, :, 1:3, 1:3], p[4]) and c[0, 0, 0, 0] == x[0, 0, 0, 0]


def test_submission_csv_ids(tmp_path):
    preds = torch.tensor([[[0, 1, 0], [1, 0, 0]]])  # 2 patch rows (y), 3 patch columns (x)
    path = write_submission(tmp_path / "sub" / "submission.csv", preds, image_ids=[7], patch=16)
    lines = path.read_text().splitlines()
    assert lines[0] == "id,prediction" and len(lines) == 7
    assert lines[1:4] == ["007_0_0,0", "007_0_16,1", "007_16_0,1"]  # x outer, y inner; x = column
    assert "007_32_16,0" in lines and "007_16_16,0" in lines


def test_split_indices_disjoint_and_seeded():
    tr, va, te = image_split(10, 0.2, 0.2, seed=3)
    assert len(tr) == 6 and len(va) == 2 and len(te) == 2
    assert sorted(torch.cat([tr, va, te]).tolist()) == list(range(10))
    assert torch.equal(image_split(10, 0.2, 0.2, seed=3)[1], va)


def test_road_patch_bundle_and_cache(tmp_path):
    write_roads(tmp_path / "roads", numbers=range(1, 11))
    kw = dict(patch=8, features=["colour_moments", "hog"], cell=4, cache_dir=str(tmp_path / "cache"))
    b = build_road_patches(str(tmp_path / "roads"), **kw)
    assert isinstance(b, DataBundle) and b.num_classes == 2 and b.class_names == ["background", "road"]
    assert len(b.train) == 6 * 16 and len(b.val) == 2 * 16 and len(b.test) == 2 * 16
    assert b.model_kwargs == {"in_features": 6 + 36} and b.train.inputs.shape == (96, 42)
    assert b.train.targets.tolist()[:4] == [0, 1, 0, 0]  # columns 8..15 (+ the 128 edge at 16) are road
    assert torch.allclose(b.train.inputs.mean(0), torch.zeros(42), atol=1e-4)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again = build_road_patches(str(tmp_path / "roads"), **kw)
    assert torch.equal(again.val.inputs, b.val.inputs)
    assert build_road_patches(str(tmp_path / "roads"), context=4, **kw).train.inputs.shape[1] == 6 + 9 * 36


def test_mito_patch_bundle(tmp_path):
    write_mito(tmp_path, slices=12, testing=False)
    b = build_mito_patches(str(tmp_path), patch=8, slice_step=2, cell=4, max_train_patches=50,
                           features=["colour_histogram", "gradient_histograms"], hist_bins=4)
    assert b.class_names == ["background", "mitochondrion"] and b.train.inputs.shape == (50, 4 + 4 * 9)
    assert len(b.val) == 24 and len(b.test) == 24  # 6 slices kept: 4 train, 1 val, 1 test; 24 patches each


def test_build_feature_data_from_normalised_images(tmp_path):
    def split(n, seed):
        g = torch.Generator().manual_seed(seed)
        return TensorSplit((torch.rand(n, 1, 16, 16, generator=g) - 0.5) / 0.25, torch.arange(n) % 3)

    source = DataBundle(split(30, 0), split(9, 1), split(9, 2), 3, ["a", "b", "c"], mean=(0.5,), std=(0.25,),
                        name="toy")
    b = build_feature_data(lambda: source, ["colour_histogram", "hog"], hist_bins=4, cache_dir=str(tmp_path))
    assert b.model_kwargs == {"in_features": 4 + 36} and b.name == "toy+colour_histogram+hog"
    assert torch.equal(b.test.targets, source.test.targets)
    # un-normalised pixels are uniform in [0,1): every histogram bin is populated before standardising
    assert torch.allclose(b.train.inputs.mean(0), torch.zeros(40), atol=1e-4)
    assert len(list(tmp_path.glob("toy-features-*.pt"))) == 1
    with pytest.raises(ConfigError, match="TensorSplit"):
        build_feature_data(DataBundle(TensorSplit(torch.rand(4, 5), torch.zeros(4)), *[source.val] * 2, 3,
                                      ["a", "b", "c"]), ["hog"])


def test_feature_data_calls_its_source_builder_with_root(tmp_path):
    calls = []

    def source(root=None):
        calls.append(root)
        split = TensorSplit(torch.rand(12, 1, 16, 16), torch.arange(12) % 2)
        return DataBundle(split, split, split, 2, ["a", "b"], name="toy")

    build_feature_data(source, ["colour_histogram"], hist_bins=4, root=str(tmp_path))
    build_feature_data(source, ["colour_histogram"], hist_bins=4)
    assert calls == [str(tmp_path), None]


def test_logreg_on_road_patches_runs_from_data_root(tmp_path):
    """`cnnlab-train experiment=logreg_patches_roads data.root=...` on files in the real layout, in-process."""
    import json

    from conftest import run_train

    write_roads(tmp_path / "my_roads", numbers=range(1, 11), size=64)
    run_dir, value = run_train(tmp_path, ["experiment=logreg_patches_roads", f"data.root={tmp_path}/my_roads",
                                          f"paths.data_dir={tmp_path}/data", "trainer.epochs=2",
                                          "trainer.tensorboard=false"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["experiment"] == "logreg_patches_roads" and results["loss"] == "logistic"
    assert {"test/f1", "test/iou", "val/f1"} <= set(results) and value == results["val/f1"]
    assert results["test/f1"] > 0.9  # road patches are bright in the synthetic images: colour separates them


@pytest.mark.parametrize("n, val, test, has_test", [(9, 0.5, 0.2, True), (5, 0.3, 0.2, True), (165, 0.2, 0.2, True),
                                                    (165, 0.2, 0.2, False), (7, 0.3, 0.3, False)])
def test_slice_blocks_cover_every_slice_once_in_contiguous_order(n, val, test, has_test):
    from cnnlab.data.splits import slice_blocks

    blocks = slice_blocks(n, val, test, has_test)
    together = blocks["train"] + blocks["val"] + blocks.get("test", [])
    assert together == list(range(n))  # nothing dropped, nothing twice, train < val < test
    assert len(blocks["val"]) == round(n * val)  # the size asked for (Python's rounding)
    assert ("test" in blocks) != has_test and all(len(b) > 0 for b in blocks.values())


def test_16_bit_stacks_and_slices_are_scaled_not_clipped(tmp_path):
    # microscopes write 16-bit pages; PIL's convert("L") would clip every value above 255 to white
    rng = np.random.default_rng(0)
    pages = rng.integers(0, 65536, (3, 24, 20), dtype=np.uint16)
    truth = np.zeros((3, 24, 20), dtype=np.uint16)
    truth[:, 5:15, 4:9] = 65535  # a 16-bit 0/65535 ground truth
    for name, stack in (("training.tif", pages), ("training_groundtruth.tif", truth)):
        frames = [Image.fromarray(p) for p in stack]
        assert frames[0].mode.startswith("I;16")
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
    images, masks = read_mito(tmp_path, "training")
    want = np.round(pages.astype(np.float64) * 255 / 65535)
    assert np.array_equal(images[:, 0].numpy(), want.astype(np.uint8))
    assert np.array_equal(masks.numpy(), (truth > 0).astype(np.uint8))
    labels = np.zeros((24, 20), dtype=np.uint16)
    labels[:12] = 2  # a 16-bit PNG of class indices keeps them
    Image.fromarray(labels).save(tmp_path / "labels.png")
    from cnnlab.data.segmentation import _open

    assert np.array_equal(_open(tmp_path / "labels.png", "L", mask=True), labels.astype(np.uint8))
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ConfigError, match=r"float.tif has floating-point pixels .*8- or 16-bit"):
        read_tiff_stack(tmp_path / "float.tif")
