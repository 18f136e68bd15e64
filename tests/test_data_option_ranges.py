"""Counts, sizes, fractions and thresholds of the segmentation and text data configs: a value out of range is one
line naming data.<key> before any file is read; build_data turns only library ValueErrors into one line."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import run_train
from cnnlab.build import build_data
from cnnlab.data import roads
from cnnlab.data.featureset import build_mito_patches, build_road_patches
from cnnlab.data.mito import build_mito
from cnnlab.data.roads import build_roads
from cnnlab.data.segsynth import build_mito_synthetic, build_roads_synthetic
from cnnlab.data.sentiment import build_sentiment_synthetic
from cnnlab.data.textsets import build_sst2
from cnnlab.errors import ConfigError
from fakes import write_roads
from text_fakes import write_sst2

NOWHERE = "/nonexistent/cnnlab-data"  # the value is checked before the folder is looked at

CASES = [
    (build_roads, {"max_images": 0}, "data.max_images=0 is not valid: it must be a whole number >= 3, or null"),
    (build_roads, {"max_images": -3}, "data.max_images=-3 is not valid"),  # [:-3] would drop three images
    (build_roads, {"val_fraction": 0}, "data.val_fraction=0 is not valid: it must be a fraction in (0, 1)"),
    (build_roads, {"test_fraction": 1.5}, "data.test_fraction=1.5 is not valid"),
    (build_roads, {"mask_threshold": 255}, "data.mask_threshold=255 is not valid: it must be a mask value in 0..254"),
    (build_roads, {"mask_threshold": -1}, "data.mask_threshold=-1 is not valid"),
    (build_mito, {"slice_step": 0}, "data.slice_step=0 is not valid: it must be a whole number >= 1"),
    (build_mito, {"val_fraction": 1.0}, "data.val_fraction=1.0 is not valid: it must be a fraction in (0, 1)"),
    (build_mito, {"test_fraction": -0.5}, "data.test_fraction=-0.5 is not valid: it must be a fraction in [0, 1)"),
    (build_mito, {"mask_threshold": 300}, "data.mask_threshold=300 is not valid"),
    (build_road_patches, {"max_images": 1}, "data.max_images=1 is not valid"),
    (build_road_patches, {"threshold": 1.0}, "data.threshold=1.0 is not valid: it must be a fraction in [0, 1)"),
    (build_mito_patches, {"slice_step": 0}, "data.slice_step=0 is not valid"),
    (build_mito_patches, {"max_train_patches": 0}, "data.max_train_patches=0 is not valid"),
    (build_sst2, {"min_len": 0}, "data.min_len=0 is not valid: it must be a whole number >= 1"),
    (build_sst2, {"max_len": 0}, "data.max_len=0 is not valid: it must be a whole number >= 1, or null"),
]


@pytest.mark.parametrize("builder, values, message", CASES)
def test_a_value_out_of_range_is_named_before_the_files_are_read(builder, values, message):
    with pytest.raises(ConfigError) as err:
        builder(NOWHERE, **values)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("builder, values, message", [
    (build_roads_synthetic, {"num_images": 2}, "data.num_images=2 is not valid: it must be a whole number >= 3"),
    (build_roads_synthetic, {"size": 8}, "data.size=8 is not valid: it must be a whole number >= 16"),
    (build_mito_synthetic, {"width": 0}, "data.width=0 is not valid"),
    (build_sentiment_synthetic, {"num_test": 0}, "data.num_test=0 is not valid: it must be a whole number >= 1"),
    (build_sentiment_synthetic, {"max_len": -2}, "data.max_len=-2 is not valid"),
])
def test_generated_data_sizes_are_checked(builder, values, message):
    with pytest.raises(ConfigError) as err:
        builder(**values)
    assert str(err.value).startswith(message)


def test_values_at_the_edges_of_the_ranges_are_accepted(tmp_path):
    write_roads(tmp_path / "roads", numbers=tuple(range(1, 11)))
    b = build_roads(str(tmp_path / "roads"), max_images=3, mask_threshold=0)
    assert (len(b.train), len(b.val), len(b.test)) == (1, 1, 1)
    assert b.train.targets[0, 0].tolist() == [0] * 7 + [1] * 10 + [0] * 15  # > 0: the 100 edge at 7 is road too
    write_sst2(tmp_path / "sst2")
    assert build_sst2(str(tmp_path / "sst2"), val_size=5, min_len=1, max_len=1).train.inputs.shape[1] == 1


def test_max_images_zero_on_the_command_line_names_the_key(tmp_path):
    write_roads(tmp_path / "roads", numbers=tuple(range(1, 11)))
    with pytest.raises(ConfigError) as err:
        run_train(tmp_path, ["experiment=unet_roads", f"data.root={tmp_path / 'roads'}", "data.max_images=0",
                             "model.base=8", "trainer.epochs=1", "trainer.budget_min=null"])
    assert str(err.value).startswith("data.max_images=0 is not valid")


def _roads_cfg(root):
    return OmegaConf.create({"_target_": "cnnlab.data.roads.build_roads", "root": str(root), "augment": None})


def test_build_data_calls_a_library_valueerror_one_line_and_keeps_cnnlabs_own(tmp_path, monkeypatch):
    write_roads(tmp_path / "roads", numbers=tuple(range(1, 11)))
    real = roads.image_split

    def library_refuses(n, *args):
        np.stack([])  # numpy's ValueError about the values it got

    monkeypatch.setattr(roads, "image_split", library_refuses)
    with pytest.raises(ConfigError, match=r"^data config: need at least one array to stack: check the data=\.\.\."):
        build_data(_roads_cfg(tmp_path / "roads"))

    monkeypatch.setattr(roads, "image_split", real)
    monkeypatch.setattr(roads, "read_roads", lambda *args: ("images", "masks"))  # build_roads unpacks three
    with pytest.raises(ValueError, match="not enough values to unpack") as err:  # a bug in cnnlab's own code
        build_data(_roads_cfg(tmp_path / "roads"))
    assert not isinstance(err.value, ConfigError)  # keeps its traceback
